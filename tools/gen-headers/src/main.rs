//! Generates the C headers of libdmsg from the `dmsg-ffi` sources with
//! cbindgen (pinned in Cargo.toml), so that C sees exactly the items the
//! library exports.
//!
//! Usage: `gen-headers OUTDIR` writes `OUTDIR/dmsg.h` and
//! `OUTDIR/sys/dmsg.h`. `make headers` runs it on `include/`;
//! `make check-headers` runs it on a temporary directory and compares.
//!
//! # How an item is routed to a header
//!
//! By the source file it is written in: [`HEADERS`] lists, per header, the
//! files of `dmsg-ffi/src` it is generated from.
//! - To add an item to a header, write it in one of that header's files:
//!   a `pub const`, a `#[no_mangle] pub extern "C" fn`, a
//!   `#[no_mangle] pub static`, or a `pub` `#[repr(C)]` struct, union,
//!   enum or type alias (every public type of a routed file is exported,
//!   even when no function uses it). No change is needed here.
//! - To add a new source file, add its name to one `sources` list below
//!   (one line).
//!
//! Types are written with their Rust names, which are the C names: a
//! struct `dmsg_hdr` is `struct dmsg_hdr`, and a `pub type dmsg_hdr_t =
//! dmsg_hdr;` is `typedef struct dmsg_hdr dmsg_hdr_t;`. Refer to a type of
//! the other header by its typedef name (`dmsg_hdr_t`): cbindgen then
//! writes the name as it is, and `dmsg.h` includes `<sys/dmsg.h>`.
//!
//! Integer constants are copied as written in Rust (hex stays hex, `_`
//! separators dropped); `u32` constants get a `U` suffix and `u64` ones
//! `ULL`, so that C sees them unsigned. What cbindgen cannot express
//! (function-like macros, string constants, the `uuid_t` block) is the
//! verbatim C below.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The cbindgen version this generator is pinned to (see Cargo.toml).
const CBINDGEN_VERSION: &str = "0.29.4";

/// One generated header.
struct HeaderSpec {
    /// Path under the output directory.
    path: &'static str,
    /// Include guard macro.
    guard: &'static str,
    /// Files of `dmsg-ffi/src` whose items go to this header.
    sources: &'static [&'static str],
    /// What the header is, for its opening comment.
    about: &'static str,
    /// Verbatim C after the includes, inside the `extern "C"` block.
    prologue: &'static str,
    /// Verbatim C after the generated items, inside the `extern "C"` block.
    epilogue: &'static str,
}

/// The routing table: which source file feeds which header.
const HEADERS: &[HeaderSpec] = &[
    HeaderSpec {
        path: "sys/dmsg.h",
        guard: "_SYS_DMSG_H_",
        sources: &["wire_types.rs", "wire_consts.rs"],
        about: "The dmsg wire format: message structs and constants.",
        prologue: SYS_PROLOGUE,
        epilogue: SYS_EPILOGUE,
    },
    HeaderSpec {
        path: "dmsg.h",
        guard: "_DMSG_H_",
        sources: &[
            "lib_consts.rs",
            "handshake.rs",
            "crc.rs",
            "types.rs",
            "iocom.rs",
            "msg.rs",
            "circuit.rs",
            "debug.rs",
            "subs.rs",
            "lnk.rs",
            "service.rs",
            "crypto.rs",
        ],
        about: "The dmsg library (libdmsg): constants, types and functions.",
        prologue: LIB_PROLOGUE,
        epilogue: LIB_EPILOGUE,
    },
];

/// Rust types that are not emitted but written as other C text.
const RENAMED: &[(&str, &str)] = &[("Uuid", "struct uuid")];

/// Verbatim C at the top of `sys/dmsg.h`: the `uuid_t` block.
const SYS_PROLOGUE: &str = r#"/*
 * uuid_t is the BSD struct uuid (16 bytes, host byte order), which BSD
 * systems declare in <sys/uuid.h>. Elsewhere this header declares
 * struct uuid itself, and typedef struct uuid uuid_t unless the program
 * already has a uuid_t (_UUID_T_DECLARED, _UUID_T, or libuuid's
 * <uuid/uuid.h> included first, whose uuid_t is a byte array) or defines
 * DMSG_NO_UUID_T before including this header (do that when including
 * <uuid/uuid.h> after it). The wire structs below name struct uuid, so
 * their layout is the same in every case.
 */
#if defined(__DragonFly__) || defined(__FreeBSD__)
#include <sys/uuid.h>
#else
#ifndef _DMSG_STRUCT_UUID_DECLARED
#define _DMSG_STRUCT_UUID_DECLARED
struct uuid {
  uint32_t time_low;
  uint16_t time_mid;
  uint16_t time_hi_and_version;
  uint8_t clock_seq_hi_and_reserved;
  uint8_t clock_seq_low;
  uint8_t node[6];
};
#endif
#if !defined(_UUID_T_DECLARED) && !defined(_UUID_T) && \
    !defined(_UUID_UUID_H) && !defined(DMSG_NO_UUID_T)
#define _UUID_T_DECLARED
typedef struct uuid uuid_t;
#endif
#endif
"#;

/// Verbatim C at the end of `sys/dmsg.h`: the function-like macros.
const SYS_EPILOGUE: &str = r#"/* Round n up to a multiple of DMSG_ALIGN. */
#define DMSG_DOALIGN(n) (((n) + DMSG_ALIGNMASK) & ~DMSG_ALIGNMASK)

/* The header-size bits of a command whose body is struct elm. */
#define DMSG_HDR_ENCODE(elm) \
  (((uint32_t)sizeof(struct elm) + DMSG_ALIGNMASK) / DMSG_ALIGN)

/* A command value: protocol, 12-bit command code, header size. */
#define DMSG_LNK(cmd, elm) (DMSG_PROTO_LNK | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
#define DMSG_DBG(cmd, elm) (DMSG_PROTO_DBG | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
#define DMSG_DOM(cmd, elm) (DMSG_PROTO_DOM | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
#define DMSG_CAC(cmd, elm) (DMSG_PROTO_CAC | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
#define DMSG_QRM(cmd, elm) (DMSG_PROTO_QRM | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
#define DMSG_BLK(cmd, elm) (DMSG_PROTO_BLK | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
#define DMSG_VOP(cmd, elm) (DMSG_PROTO_VOP | ((cmd) << 8) | DMSG_HDR_ENCODE(elm))
"#;

/// Verbatim C at the top of `dmsg.h`: the string constants.
const LIB_PROLOGUE: &str = r#"/* Key directory, and the directory of the peers' public keys. */
#define DMSG_DEFAULT_DIR "/etc/hammer2"
#define DMSG_PATH_REMOTE DMSG_DEFAULT_DIR "/remote"

/* The library structs refer to each other (and callbacks to them). */
struct dmsg_iocom;
struct dmsg_circuit;
struct dmsg_state;
struct dmsg_msg;
"#;

/// Verbatim C at the end of `dmsg.h`: what cbindgen cannot write (the
/// C-variadic functions of `dmsg-ffi/csrc/variadic.c`, and globals whose
/// Rust type is atomic).
const LIB_EPILOGUE: &str = r#"/*
 * Sets iocom->label to the printf-style formatted string (malloc'd; the
 * previous label is freed).
 */
void dmsg_iocom_label(dmsg_iocom_t *iocom, const char *ctl, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Debug level: 0 is quiet; 1 and up trace received messages and
 * transaction changes on stderr.
 */
extern int DMsgDebugOpt;

/*
 * Sends the printf-style formatted text (at most 1023 characters) and a
 * NUL as a one-way DBG_SHELL|REPLY on the circuit (e.g. msg->circuit in
 * a dbgmsg callback).
 */
void dmsg_circuit_printf(dmsg_circuit_t *circuit, const char *ctl, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The rnss of the default node, added to the rnss of every span it
 * relays. Set it before the first LNK use; if it is 0 then, a random
 * non-zero value is chosen and stored here.
 */
extern uint32_t DMsgRNSS;

/*
 * Called (if set) when a node appears (DMSG_NODEOP_ADD) or goes away
 * (DMSG_NODEOP_DEL) in any node of the process, outside every library
 * lock: *opaquep is the node's slot (NULL on ADD; what is stored there is
 * kept and handed back on DEL); msg holds the node's span
 * (msg->any.lnk_span; msg->iocom, circuit and state are NULL) and is freed
 * when the handler returns. dmsg_node_current() names the node whose
 * registry changed.
 */
extern void (*dmsg_node_handler)(void **opaquep, struct dmsg_msg *msg, int op);
"#;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-headers OUTDIR");
        return ExitCode::from(2);
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dmsg-ffi/src");
    for spec in HEADERS {
        if let Err(e) = write_header(spec, &src, Path::new(&out)) {
            eprintln!("gen-headers: {}: {e}", spec.path);
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Generates one header and writes it under `out`.
fn write_header(spec: &HeaderSpec, src: &Path, out: &Path) -> Result<(), String> {
    let files: Vec<PathBuf> = spec.sources.iter().map(|f| src.join(f)).collect();
    let mut types = Vec::new();
    let mut literals = HashMap::new();
    for file in &files {
        scan(file, &mut types, &mut literals)?;
    }
    let text = generate(spec, &files, types)?;
    let text = rewrite_literals(&text, &literals);
    let path = out.join(spec.path);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Collects from one source file the names of its public types (to export
/// them all) and the C text of its integer constants.
fn scan(
    file: &Path,
    types: &mut Vec<String>,
    literals: &mut HashMap<String, String>,
) -> Result<(), String> {
    let code = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let ast = syn::parse_file(&code).map_err(|e| format!("{}: {e}", file.display()))?;
    for item in ast.items {
        match item {
            syn::Item::Struct(s) if is_pub(&s.vis) => types.push(s.ident.to_string()),
            syn::Item::Union(u) if is_pub(&u.vis) => types.push(u.ident.to_string()),
            syn::Item::Enum(e) if is_pub(&e.vis) => types.push(e.ident.to_string()),
            syn::Item::Type(t) if is_pub(&t.vis) => types.push(t.ident.to_string()),
            syn::Item::Const(c) if is_pub(&c.vis) => {
                if let Some(lit) = c_literal(&c.ty, &c.expr) {
                    literals.insert(c.ident.to_string(), lit);
                }
            }
            _ => {}
        }
    }
    types.retain(|t| !RENAMED.iter().any(|(name, _)| name == t));
    Ok(())
}

/// Whether an item is plain `pub`.
fn is_pub(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

/// The C spelling of an integer constant: the Rust literal without `_` and
/// suffix, plus `U` for `u32` and `ULL` for `u64`. `None` for anything
/// that is not a plain integer literal (cbindgen's own text is kept).
fn c_literal(ty: &syn::Type, expr: &syn::Expr) -> Option<String> {
    let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(int),
        ..
    }) = expr
    else {
        return None;
    };
    let text = int.token().to_string().replace('_', "");
    let digits = text.strip_suffix(int.suffix()).unwrap_or(&text);
    let suffix = match ty {
        syn::Type::Path(p) if p.path.is_ident("u32") => "U",
        syn::Type::Path(p) if p.path.is_ident("u64") => "ULL",
        _ => "",
    };
    Some(format!("{digits}{suffix}"))
}

/// Runs cbindgen over the header's source files.
fn generate(spec: &HeaderSpec, files: &[PathBuf], types: Vec<String>) -> Result<String, String> {
    let mut config = cbindgen::Config {
        language: cbindgen::Language::C,
        style: cbindgen::Style::Tag,
        // The include guard is written here rather than by cbindgen, which
        // would put the trailer after its #endif.
        header: Some(format!(
            "/*\n * {}\n *\n * Generated by tools/gen-headers (cbindgen {CBINDGEN_VERSION}) from\n \
             * dmsg-ffi/src: {}.\n \
             * Do not edit: change the Rust source and run `make headers`.\n \
             */\n\n#ifndef {guard}\n#define {guard}",
            spec.about,
            spec.sources.join(", "),
            guard = spec.guard,
        )),
        no_includes: true,
        sys_includes: vec!["stddef.h".to_string(), "stdint.h".to_string()],
        after_includes: Some(format!(
            "{}\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n{}",
            if spec.path == "dmsg.h" {
                "#include <sys/dmsg.h>\n"
            } else {
                ""
            },
            if spec.prologue.is_empty() {
                String::new()
            } else {
                format!("\n{}", spec.prologue.trim_end())
            }
        )),
        trailer: Some(format!(
            "{}#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {} */",
            if spec.epilogue.is_empty() {
                String::new()
            } else {
                format!("{}\n\n", spec.epilogue.trim_end())
            },
            spec.guard
        )),
        cpp_compat: false,
        documentation: true,
        documentation_style: cbindgen::DocumentationStyle::C99,
        usize_is_size_t: true,
        ..cbindgen::Config::default()
    };
    config.export.include = types;
    for (rust, c) in RENAMED {
        config.export.exclude.push((*rust).to_string());
        config
            .export
            .rename
            .insert((*rust).to_string(), (*c).to_string());
    }
    let mut builder = cbindgen::Builder::new().with_config(config);
    for file in files {
        builder = builder.with_src(file);
    }
    let bindings = builder.generate().map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    bindings.write(&mut buf);
    String::from_utf8(buf).map_err(|e| e.to_string())
}

/// Replaces the value of each `#define NAME VALUE` whose NAME has a known
/// C literal.
fn rewrite_literals(text: &str, literals: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut parts = line.trim_end_matches('\n').splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("#define"), Some(name), Some(_)) if literals.contains_key(name) => {
                let lit = literals.get(name).map_or("", String::as_str);
                out.push_str(&format!("#define {name} {lit}\n"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn literal(item: &str) -> Option<String> {
        let syn::Item::Const(c) = syn::parse_str::<syn::Item>(item).unwrap() else {
            panic!("not a const: {item}");
        };
        c_literal(&c.ty, &c.expr)
    }

    #[test]
    fn literals_keep_their_base_and_get_unsigned_suffixes() {
        assert_eq!(
            literal("const A: u32 = 0x8000_0000;").unwrap(),
            "0x80000000U"
        );
        assert_eq!(literal("const A: u32 = 1;").unwrap(), "1U");
        assert_eq!(literal("const A: u64 = 0xFFu64;").unwrap(), "0xFFULL");
        assert_eq!(literal("const A: u8 = 32;").unwrap(), "32");
        assert_eq!(literal("const A: i32 = 0x0400;").unwrap(), "0x0400");
        assert_eq!(literal("const A: usize = 65_536;").unwrap(), "65536");
        assert_eq!(literal("const A: u32 = B | 1;"), None);
    }

    #[test]
    fn only_known_defines_are_rewritten() {
        let mut map = HashMap::new();
        map.insert("DMSGF_CREATE".to_string(), "0x80000000U".to_string());
        let text = "#define DMSGF_CREATE 2147483648u\n#define OTHER 5\n// #define DMSGF_CREATE 1\n";
        assert_eq!(
            rewrite_literals(text, &map),
            "#define DMSGF_CREATE 0x80000000U\n#define OTHER 5\n// #define DMSGF_CREATE 1\n"
        );
    }

    /// The committed headers are what the generator makes now (the same
    /// check as `make check-headers`, so `cargo test` catches it too).
    #[test]
    fn committed_headers_are_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::env::temp_dir().join(format!("dmsg-gen-headers-{}", std::process::id()));
        let src = root.join("dmsg-ffi/src");
        for spec in HEADERS {
            write_header(spec, &src, &out).unwrap();
        }
        for spec in HEADERS {
            let fresh = fs::read_to_string(out.join(spec.path)).unwrap();
            let committed = fs::read_to_string(root.join("include").join(spec.path)).unwrap();
            assert!(
                fresh == committed,
                "include/{} is stale: run `make headers`",
                spec.path
            );
        }
        fs::remove_dir_all(&out).unwrap();
    }
}
