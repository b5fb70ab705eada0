//! Browser POST forms (`multipart/form-data`): the fields before `file`, the key, and the
//! base64 policy document with its conditions, as a POST upload reads them before it
//! believes anyone. Nothing may panic; no field is held whole past its limit.
//!
//! Input: the first line is the boundary, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"x"[..], data),
    };
    let content_type = format!(
        "multipart/form-data; boundary={}",
        String::from_utf8_lossy(boundary)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _ = runtime.block_on(hoard_s3::ops::check_form(
        &content_type,
        bytes::Bytes::copy_from_slice(body),
        "bucket",
        1_795_000_000,
    ));
});
