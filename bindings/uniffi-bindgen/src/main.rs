//! `uniffi-bindgen`, pinned to the workspace's uniffi: run it in library mode
//! on the built `libpieper_ffi` (see scripts/test-kotlin).

fn main() {
    uniffi::uniffi_bindgen_main()
}
