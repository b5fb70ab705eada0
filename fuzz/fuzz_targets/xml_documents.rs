//! Every XML request document the S3 layer parses, on the same bytes: CompleteMultipartUpload,
//! Delete, versioning, ACL, CORS, tagging, lifecycle, public access block. Nothing may panic;
//! bad input is MalformedXML or another S3 error.
#![no_main]

use hoard_s3::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xml::parse_complete_multipart(data);
    let _ = xml::parse_delete(data);
    let _ = xml::parse_versioning(data);
    let _ = xml::parse_access_control_policy(data);
    let _ = xml::parse_cors(data);
    let _ = xml::parse_tagging(data);
    let _ = xml::parse_lifecycle(data);
    let _ = xml::parse_public_access_block(data);
});
