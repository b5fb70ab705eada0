//! Every XML request document the S3 layer parses, on the same bytes: CreateBucketConfiguration,
//! CompleteMultipartUpload, Delete, versioning, ACL, ownership controls, CORS, tagging,
//! lifecycle, public access block. Nothing may panic; bad input is MalformedXML or another S3
//! error.
#![no_main]

use hoard_s3::{auth, lifecycle, ops, protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ops::bucket::parse_create_bucket_configuration(data);
    let _ = ops::multipart::parse_complete_multipart(data);
    let _ = ops::bucket::parse_delete(data);
    let _ = ops::versioning::parse_versioning(data);
    let _ = auth::acl::parse_access_control_policy(data);
    let _ = auth::acl::parse_ownership_controls(data);
    let _ = ops::cors::parse_cors(data);
    let _ = protocol::tags::parse_tagging(data);
    let _ = lifecycle::parse_lifecycle(data);
    let _ = auth::access::parse_public_access_block(data);
});
