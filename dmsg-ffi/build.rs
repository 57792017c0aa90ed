//! Gives the shared library the SONAME `libdmsg.so.<major>`, the name the
//! Makefile installs it under, and compiles the C shim `csrc/variadic.c`
//! (the C-variadic functions, which stable Rust cannot define) into both
//! libraries.
//!
//! The shim is linked whole (nothing in Rust calls it), and for the shared
//! library `csrc/exports.map` adds its functions to the exported symbols:
//! rustc's own version script exports only Rust's `#[no_mangle]` items.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| String::from("0"));
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "macos" && os != "windows" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdmsg.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rerun-if-changed=csrc/variadic.c");
    println!("cargo:rerun-if-changed=csrc/exports.map");
    cc::Build::new()
        .file("csrc/variadic.c")
        .warnings(true)
        .extra_warnings(true)
        .cargo_metadata(false)
        .compile("dmsg_variadic");
    if let Ok(out) = std::env::var("OUT_DIR") {
        println!("cargo:rustc-link-search=native={out}");
    }
    println!("cargo:rustc-link-lib=static:+whole-archive=dmsg_variadic");
    if os != "macos" && os != "windows" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| String::from("."));
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/csrc/exports.map");
    }
}
