//! Gives the shared library the SONAME `libdmsg.so.<major>`, the name the
//! Makefile installs it under.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| String::from("0"));
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "macos" && os != "windows" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdmsg.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
