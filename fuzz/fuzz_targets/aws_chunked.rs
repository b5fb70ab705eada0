//! `aws-chunked` bodies (SigV4 streaming, signed and unsigned, with trailers), fed to the
//! decoder in pieces of every size the input chooses. Nothing may panic; bad framing or a bad
//! signature is an S3 error, and no more bytes come out than went in.
#![no_main]

use hoard_s3::auth::StreamingAuth;
use hoard_s3::body::chunked::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let auth = StreamingAuth {
        signed: control & 1 == 1,
        trailer: control & 2 == 2,
        signing_key: [7; 32],
        seed_signature: "0".repeat(64),
        amz_date: "20261201T000000Z".into(),
        scope: "20261201/us-east-1/s3/aws4_request".into(),
    };
    let trailers = match control & 4 {
        0 => vec![],
        _ => vec!["x-amz-checksum-crc32".to_string()],
    };
    let expected = (control & 8 == 8).then_some(body.len() as u64 / 2);
    let mut decoder = ChunkedDecoder::new(auth, expected, trailers);
    let mut out = Vec::new();
    let piece = (control as usize >> 4) + 1;
    for chunk in body.chunks(piece) {
        if decoder.feed(chunk, &mut out).is_err() {
            return;
        }
    }
    assert!(out.len() <= body.len());
    let _ = decoder.finish();
});
