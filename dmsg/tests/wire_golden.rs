//! The golden captures of the original C library (`testdata/vectors/plain`,
//! see `testdata/vectors/INDEX.md`): every stream decodes to the header
//! fields and bodies its annotated `.txt` shows, re-encodes to the exact
//! same bytes, and decodes the same in the chunks the capture tap saw.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::wire::constants::{peer_type_str, pfs_type_str};
use dmsg::wire::{cmd, doalign, Decoder, Encoder, Label, LnkCirc, LnkConn, LnkSpan, Message};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn plain_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/plain")
}

/// One `--- message N` block of an annotated dump.
#[derive(Debug, Default)]
struct Expected {
    index: usize,
    offset: usize,
    header_bytes: usize,
    aux_aligned: usize,
    cmd: u32,
    names: String,
    libdmsg_name: String,
    salt: u32,
    msgid: u64,
    circuit: u64,
    error: u32,
    aux_bytes: u32,
    aux_crc: u32,
    hdr_crc: u32,
    aux_text: Option<String>,
    /// ("LNK_SPAN", the body lines with whitespace collapsed).
    body: Option<(String, String)>,
}

fn hex_u64(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn hex_u32(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Parses the message blocks of an annotated `.txt` dump, and the message
/// count of its closing line.
fn parse_dump(txt: &str) -> (Vec<Expected>, usize) {
    let mut blocks = txt.split("\n--- message ");
    let head = blocks.next().unwrap();
    assert!(head.starts_with("# "), "dump header");
    let mut out = Vec::new();
    for block in blocks {
        let mut e = Expected::default();
        let mut lines = block.lines();
        // "N  stream offset 0x000000 (0)  512 bytes = header 512 + aux 0"
        let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        e.index = first[0].parse().unwrap();
        e.offset = first[4].trim_matches(['(', ')']).parse().unwrap();
        e.header_bytes = first[9].parse().unwrap();
        e.aux_aligned = first[12].parse().unwrap();
        let mut body: Option<(String, Vec<String>)> = None;
        for line in lines {
            let tok: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with("  hex") || line.starts_with('#') {
                if let Some((kind, parts)) = body.take() {
                    e.body = Some((kind, parts.join(" ")));
                }
                continue;
            }
            if let Some((_, parts)) = body.as_mut() {
                parts.push(tok.join(" "));
                continue;
            }
            match tok.first().copied() {
                Some("cmd") => {
                    e.cmd = hex_u32(tok[1]);
                    e.names = tok[2].to_string();
                    let start = line.find("[libdmsg: ").unwrap() + "[libdmsg: ".len();
                    let end = start + line[start..].find(']').unwrap();
                    e.libdmsg_name = line[start..end].to_string();
                }
                Some("salt") => e.salt = hex_u32(tok[1]),
                Some("msgid") => e.msgid = hex_u64(tok[1]),
                Some("circuit") => e.circuit = hex_u64(tok[1]),
                Some("error") => e.error = tok[1].parse().unwrap(),
                Some("aux_bytes") => {
                    e.aux_bytes = tok[1].parse().unwrap();
                    assert_eq!(tok[2], "aux_crc");
                    e.aux_crc = hex_u32(tok[3]);
                }
                Some("hdr_crc") => {
                    e.hdr_crc = hex_u32(tok[1]);
                    assert!(line.ends_with("OK)"), "{line}");
                }
                Some("aux") if tok.get(1) == Some(&"text") => {
                    let q = line.find('"').unwrap();
                    e.aux_text = Some(line[q..].to_string());
                }
                Some(kind) if tok.get(1) == Some(&"body:") => {
                    body = Some((kind.to_string(), vec![tok[2..].join(" ")]));
                }
                _ => {}
            }
        }
        if let Some((kind, parts)) = body {
            e.body = Some((kind, parts.join(" ")));
        }
        out.push(e);
    }
    let last = txt
        .lines()
        .rev()
        .find(|l| l.contains("message(s)"))
        .unwrap();
    let count = last
        .trim_start_matches("# ")
        .split_whitespace()
        .next()
        .unwrap();
    assert!(last.contains("0 trailing byte(s)") && last.contains("0 check failure(s)"));
    (out, count.parse().unwrap())
}

/// Quotes bytes the way the dumps print aux text and labels.
fn quote(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

fn label<const N: usize>(l: &Label<N>) -> String {
    quote(l.as_bytes())
}

/// The `key value` fragments the dump must show for this body.
fn body_fragments(kind: &str, msg: &Message) -> Vec<String> {
    match kind {
        "LNK_CONN" => {
            let b: LnkConn = msg.body().unwrap();
            vec![
                format!("mediaid {}", b.mediaid),
                format!("pfs_clid {}", b.pfs_clid),
                format!("pfs_fsid {}", b.pfs_fsid),
                format!("peer_mask 0x{:016x}", b.peer_mask),
                format!("peer_type {} ({})", b.peer_type, peer_type_str(b.peer_type)),
                format!("pfs_type {} ({})", b.pfs_type, pfs_type_str(b.pfs_type)),
                format!("proto_version {}", b.proto_version),
                format!("status {}", b.status),
                format!("rnss 0x{:08x}", b.rnss),
                format!("pfs_mask 0x{:016x}", b.pfs_mask),
                format!("cl_label {}", label(&b.cl_label)),
                format!("fs_label {}", label(&b.fs_label)),
            ]
        }
        "LNK_SPAN" => {
            let b: LnkSpan = msg.body().unwrap();
            let block = b.media.block();
            vec![
                format!("pfs_clid {}", b.pfs_clid),
                format!("pfs_fsid {}", b.pfs_fsid),
                format!("pfs_type {} ({})", b.pfs_type, pfs_type_str(b.pfs_type)),
                format!("peer_type {} ({})", b.peer_type, peer_type_str(b.peer_type)),
                format!("proto_version {}", b.proto_version),
                format!("status {}", b.status),
                format!("dist {}", b.dist),
                format!("rnss 0x{:08x}", b.rnss),
                format!("media.block.bytes {}", block.bytes),
                format!("media.block.blksize {}", block.blksize),
                format!("cl_label {}", label(&b.cl_label)),
                format!("fs_label {}", label(&b.fs_label)),
            ]
        }
        "LNK_CIRC" => {
            let b: LnkCirc = msg.body().unwrap();
            vec![
                format!("reserved01 0x{:x}", b.reserved01),
                format!("target 0x{:016x}", b.target),
            ]
        }
        other => panic!("no body check for {other}"),
    }
}

/// Decodes a whole stream that starts at sequence byte `seq`.
fn decode_all(bytes: &[u8], seq: u8) -> Vec<Message> {
    let mut dec = Decoder::with_seq(seq);
    let mut input = bytes;
    let mut out = Vec::new();
    while let Some(m) = dec.decode(&mut input).unwrap() {
        out.push(m);
    }
    assert!(input.is_empty() && dec.is_idle());
    out
}

fn captures() -> Vec<PathBuf> {
    let mut bins = Vec::new();
    for dir in fs::read_dir(plain_dir()).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "bin") {
                bins.push(p);
            }
        }
    }
    bins.sort();
    bins
}

#[derive(Default)]
struct Tally {
    files: usize,
    messages: usize,
    bodies: BTreeMap<String, usize>,
}

fn check_capture(bin: &Path, tally: &mut Tally) {
    let name = bin.display().to_string();
    let bytes = fs::read(bin).unwrap();
    let txt = fs::read_to_string(bin.with_extension("txt")).unwrap();
    let (expected, count) = parse_dump(&txt);
    assert_eq!(expected.len(), count, "{name}");
    assert!(!expected.is_empty(), "{name}");
    let first_seq = (expected[0].salt & 0xFF) as u8;

    let msgs = decode_all(&bytes, first_seq);
    assert_eq!(msgs.len(), expected.len(), "{name}");
    let mut offset = 0;
    for (m, e) in msgs.iter().zip(&expected) {
        let at = format!("{name} message {}", e.index);
        assert_eq!(e.offset, offset, "{at}");
        assert_eq!(64 + m.ext.len(), e.header_bytes, "{at}");
        assert_eq!(doalign(m.aux.len()), e.aux_aligned, "{at}");
        offset += m.wire_size();
        let h = &m.hdr;
        assert_eq!(h.cmd, e.cmd, "{at}");
        assert_eq!(h.salt, e.salt, "{at}");
        assert_eq!(h.msgid, e.msgid, "{at}");
        assert_eq!(h.circuit, e.circuit, "{at}");
        assert_eq!(h.error, e.error, "{at}");
        assert_eq!(h.aux_bytes, e.aux_bytes, "{at}");
        assert_eq!(h.aux_crc, e.aux_crc, "{at}");
        assert_eq!(h.hdr_crc, e.hdr_crc, "{at}");
        assert_eq!(cmd::basecmd_str(h.cmd), e.libdmsg_name, "{at}");
        let flags = e
            .names
            .split_once('|')
            .map_or(String::new(), |(_, f)| format!("|{f}"));
        assert_eq!(cmd::flags_str(h.cmd), flags, "{at}");
        assert!(
            m.describe()
                .starts_with(&format!("msg={}{flags} ", e.libdmsg_name)),
            "{at}"
        );
        match &e.aux_text {
            Some(t) => assert_eq!(&quote(&m.aux), t, "{at}"),
            None => assert!(m.aux.is_empty(), "{at}"),
        }
        if let Some((kind, text)) = &e.body {
            let text = format!(" {text} ");
            for frag in body_fragments(kind, m) {
                assert!(
                    text.contains(&format!(" {frag} ")),
                    "{at}: {frag:?} not in {text:?}"
                );
            }
            *tally.bodies.entry(kind.clone()).or_default() += 1;
        }
    }
    assert_eq!(offset, bytes.len(), "{name}");

    // Same header values and salt noise in, the same bytes out.
    let mut enc = Encoder::with_seq(0, first_seq);
    let mut again = Vec::new();
    for m in &msgs {
        let pad = enc
            .encode_head_with_salt(m, m.hdr.salt, &mut again)
            .unwrap();
        again.extend_from_slice(&m.aux);
        again.resize(again.len() + pad, 0);
    }
    assert!(again == bytes, "{name}: re-encoding differs");

    tally.files += 1;
    tally.messages += msgs.len();
}

#[test]
fn every_capture_decodes_to_its_dump_and_reencodes_exactly() {
    let mut tally = Tally::default();
    for bin in captures() {
        check_capture(&bin, &mut tally);
    }
    // INDEX.md lists 29 phase streams and 4 whole-connection streams, with
    // 176 messages (88 in the phases, the same 88 again in full/).
    assert_eq!(tally.files, 33);
    assert_eq!(tally.messages, 176);
    let bodies: Vec<(&str, usize)> = tally.bodies.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        bodies,
        [("LNK_CIRC", 12), ("LNK_CONN", 8), ("LNK_SPAN", 12)]
    );
}

#[test]
fn spot_values_of_the_captures() {
    let read = |p: &str| fs::read(plain_dir().join(p)).unwrap();
    // C's span as B relays it to A: dist 2, "pfsC".
    let m = &decode_all(&read("02-span-C/AB.B2A.bin"), 2)[0];
    let span: LnkSpan = m.body().unwrap();
    assert_eq!(span.dist, 2);
    assert_eq!(span.rnss, 0x1717_1717);
    assert_eq!(span.fs_label.as_str(), Some("pfsC"));
    assert!(span.cl_label.is_empty());
    assert_eq!(
        span.pfs_clid.to_string(),
        "acc4d8d6-f7e7-5383-a562-4e2381f70e37"
    );
    // A's circuit targets that span by the msgid B gave it on this link.
    let circ = &decode_all(&read("04-circ-h2/AB.A2B.bin"), 3)[0];
    assert_eq!(circ.body::<LnkCirc>().unwrap().target, m.hdr.msgid);
    // The daemons' LNK_CONN is the one dmsg_master_service sends.
    let conn = &decode_all(&read("01-conn/AB.A2B.bin"), 0)[0];
    let c: LnkConn = conn.body().unwrap();
    assert_eq!((c.peer_mask, c.peer_type, c.pfs_mask), (!0, 1, !0));
}

/// One direction of a tap log: the `(segment, offset, length)` data rows,
/// and the offset of the closing `EOF` row if there is one.
fn events(link: &str, dir: &str) -> (Vec<(String, usize, usize)>, Option<usize>) {
    let tsv = fs::read_to_string(plain_dir().join(format!("full/{link}.events.tsv"))).unwrap();
    let mut rows = Vec::new();
    let mut eof = None;
    for l in tsv.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f[2] != dir {
            continue;
        }
        assert_eq!(eof, None, "{link}.{dir}: data after EOF");
        let off = f[3].parse().unwrap();
        match f[4] {
            "EOF" => eof = Some(off),
            len => rows.push((f[1].to_string(), off, len.parse().unwrap())),
        }
    }
    (rows, eof)
}

#[test]
fn phases_concatenate_to_the_full_stream_and_tap_chunks_decode_the_same() {
    for (link, dir) in [("AB", "A2B"), ("AB", "B2A"), ("BC", "B2C"), ("BC", "C2B")] {
        let stream = format!("{link}.{dir}");
        let full = fs::read(plain_dir().join(format!("full/{stream}.bin"))).unwrap();
        let (ev, eof) = events(link, dir);
        if let Some(end) = eof {
            assert_eq!(end, full.len(), "{stream}: EOF offset");
        }
        // Each phase file is the stretch of the full stream its events cover.
        let mut phases: Vec<&str> = Vec::new();
        for (seg, _, _) in &ev {
            if phases.last() != Some(&seg.as_str()) {
                assert!(!phases.contains(&seg.as_str()), "{stream}: {seg} twice");
                phases.push(seg);
            }
        }
        let mut concat = Vec::new();
        for seg in &phases {
            let start = ev.iter().find(|e| &e.0 == seg).unwrap().1;
            assert_eq!(start, concat.len(), "{stream} {seg}");
            concat.extend(fs::read(plain_dir().join(format!("{seg}/{stream}.bin"))).unwrap());
        }
        assert!(concat == full, "{stream}: phases do not add up");

        // Fed in the chunks the tap recorded, the same messages come out.
        let whole = decode_all(&full, 0);
        let mut dec = Decoder::new();
        let mut chunked = Vec::new();
        let mut at = 0;
        for (_, off, len) in &ev {
            assert_eq!(*off, at, "{stream}");
            let mut input = &full[at..at + len];
            at += len;
            while let Some(m) = dec.decode(&mut input).unwrap() {
                chunked.push(m);
            }
        }
        assert_eq!(at, full.len());
        assert_eq!(chunked, whole, "{stream}");
    }
}
