//! Hoard's admin requests (`/_hoard/status`, `/_hoard/shutdown`), signed by curl's own SigV4
//! implementation (`--aws-sigv4`), a client we did not write.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::support::{body_bytes, Server, ACCESS_KEY, SECRET_KEY};

fn curl(url: &str, method: &str, signed: bool) -> (u16, String) {
    crate::support::curl(url, method, signed.then_some((ACCESS_KEY, SECRET_KEY)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_shutdown_need_a_signature_and_shutdown_is_clean() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("kept").send().await.unwrap();
    s3.put_object()
        .bucket("kept")
        .key("k")
        .body(ByteStream::from_static(b"still here"))
        .send()
        .await
        .unwrap();

    let status_url = format!("{}/_hoard/status", server.endpoint);
    let shutdown_url = format!("{}/_hoard/shutdown", server.endpoint);
    let (code, body) = curl(&status_url, "GET", true);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<Profile>dev</Profile>"), "{body}");
    assert!(body.contains("<Degraded>false</Degraded>"), "{body}");
    assert!(
        body.contains("<MetadataSsd><Slot>0</Slot>") && body.contains("<State>in-sync</State>"),
        "{body}"
    );

    // Memory: the process's resident size, under the profile's budget.
    let number = |tag: &str| -> u64 {
        let open = format!("<{tag}>");
        let start = body
            .find(&open)
            .unwrap_or_else(|| panic!("no {tag}: {body}"))
            + open.len();
        body[start..start + body[start..].find('<').unwrap()]
            .parse()
            .unwrap()
    };
    let (budget, resident, peak) = (
        number("BudgetBytes"),
        number("ResidentBytes"),
        number("PeakResidentBytes"),
    );
    assert!(
        0 < resident && resident <= peak && peak < budget,
        "resident {resident}, peak {peak}, budget {budget}"
    );
    assert!(number("IndexBytes") > 0, "{body}");

    let (code, body) = curl(&status_url, "GET", false);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    let (code, _) = curl(&shutdown_url, "POST", false);
    assert_eq!(code, 403, "an unsigned shutdown must be refused");
    let (code, body) = curl(&shutdown_url, "GET", true);
    assert_eq!(code, 405, "{body}");
    let (code, body) = curl(&format!("{}/_hoard/reboot", server.endpoint), "POST", true);
    assert_eq!(code, 501, "{body}");

    // Settings are the appliance firmware's: `hoard serve` refuses them by name, and only
    // to a signed admin.
    let settings_url = format!("{}/_hoard/settings/time", server.endpoint);
    let (code, body) = curl(&settings_url, "GET", false);
    assert_eq!(code, 403, "{body}");
    for method in ["GET", "PUT"] {
        let (code, body) = curl(&format!("{settings_url}?trust_rtc=true"), method, true);
        assert_eq!(code, 501, "{body}");
        assert!(body.contains("appliance firmware"), "{body}");
    }

    // So are bays and their locate LEDs; bad requests are named first.
    let bays = format!("{}/_hoard/bays", server.endpoint);
    let (code, body) = curl(&format!("{bays}/3/locate?on=true"), "PUT", true);
    assert_eq!(code, 501, "{body}");
    assert!(body.contains("appliance firmware"), "{body}");
    let (code, body) = curl(&format!("{bays}/3/locate?on=maybe"), "PUT", true);
    assert_eq!(code, 400, "{body}");
    let (code, body) = curl(&format!("{bays}/three/locate?on=true"), "PUT", true);
    assert_eq!(code, 400, "{body}");
    let (code, _) = curl(&format!("{bays}/3/locate?on=true"), "PUT", false);
    assert_eq!(code, 403, "an unsigned locate must be refused");

    // Still serving after all that.
    s3.head_bucket().bucket("kept").send().await.unwrap();

    let (code, body) = curl(&shutdown_url, "POST", true);
    assert_eq!((code, body.as_str()), (202, "shutting down\n"));
    assert_eq!(server.wait_exit(Duration::from_secs(60)), Some(0));

    let data = server.data.clone();
    let server = Server::start_in(&data, None);
    let got = body_bytes(
        server
            .client()
            .get_object()
            .bucket("kept")
            .key("k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got, b"still here");
}
