//! What pgvisor's own log says about sessions a user would otherwise wonder about: a refused
//! login names the server's reason.

use std::time::Duration;

use pgvisor_tests::binary::PgvisorProcess;
use pgvisor_tests::{connect, shared_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_in_the_log_with_its_sqlstate() {
    let cluster = shared_cluster();
    let upstream = format!("127.0.0.1:{}", cluster.upstream().port);
    let mut pgvisor =
        PgvisorProcess::spawn(&["--upstream", &upstream, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    let listen: std::net::SocketAddr =
        pgvisor.wait_for_log(Duration::from_secs(30), |e| e["listen"].as_str().and_then(|a| a.parse().ok())).await;
    let mut endpoint = cluster.endpoint().at(&listen.ip().to_string(), listen.port());
    endpoint.password = Some("not the password".into());
    let err = connect(&endpoint).await.expect_err("a wrong password is refused");
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");
    let (sqlstate, reason) = pgvisor
        .wait_for_log(Duration::from_secs(5), |e| {
            (e["message"] == "the server refused the login")
                .then(|| (e["sqlstate"].as_str().unwrap_or_default().to_string(), e["reason"].to_string()))
        })
        .await;
    assert_eq!(sqlstate, "28P01");
    assert!(reason.contains("password authentication failed"), "{reason}");
}
