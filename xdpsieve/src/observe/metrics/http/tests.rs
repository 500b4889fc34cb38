//! What the server answers, without a network: the hostile-client tests against the real
//! binary are in `tests/metrics_hostile.rs`.

use std::io::ErrorKind;

use super::*;

fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("valid test request")
}

fn render_ok() -> Render {
    Box::new(|| Some("# EOF\n".to_string()))
}

fn closes(response: &Response<Full<Bytes>>) -> bool {
    response
        .headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v == "close")
}

#[test]
fn get_metrics_answers_openmetrics() {
    let response = respond(&request(Method::GET, "/metrics", &[]), &render_ok());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], OPENMETRICS);
    assert!(!closes(&response));
    // A query string (some scrapers add one) does not change the path.
    let response = respond(&request(Method::GET, "/metrics?x=1", &[]), &render_ok());
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn other_paths_are_not_found_and_other_methods_not_allowed() {
    for path in ["/", "/metrics/", "/metricsx", "/favicon.ico"] {
        let response = respond(&request(Method::GET, path, &[]), &render_ok());
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
        let response = respond(&request(method.clone(), "/metrics", &[]), &render_ok());
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()[header::ALLOW], "GET");
        assert!(
            !closes(&response),
            "{method} without a body keeps the connection"
        );
    }
}

#[test]
fn an_announced_body_is_refused_and_the_connection_closed() {
    let bodies: [&[(&str, &str)]; 3] = [
        &[("content-length", "18446744073709551613")],
        &[("content-length", "5")],
        &[("transfer-encoding", "chunked")],
    ];
    for headers in bodies {
        let response = respond(&request(Method::GET, "/metrics", headers), &render_ok());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        assert!(closes(&response), "{headers:?}");
        let response = respond(&request(Method::POST, "/metrics", headers), &render_ok());
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(closes(&response), "{headers:?}");
    }
    // Content-Length: 0 is no body.
    let headers = [("content-length", "0")];
    let response = respond(&request(Method::GET, "/metrics", &headers), &render_ok());
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!closes(&response));
}

#[test]
fn a_failed_encoding_answers_500() {
    let failing: Render = Box::new(|| None);
    let response = respond(&request(Method::GET, "/metrics", &[]), &failing);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn bind_errors_tell_the_operator_what_to_do() {
    let addr: SocketAddr = "127.0.0.1:9470".parse().expect("address");
    let message = bind_error(addr, ErrorKind::AddrInUse.into()).to_string();
    assert!(
        message.starts_with("cannot listen for metrics on 127.0.0.1:9470: address in use"),
        "{message}"
    );
    assert!(message.contains("--metrics"), "{message}");
    let message = bind_error(addr, ErrorKind::AddrNotAvailable.into()).to_string();
    assert!(message.contains("no interface"), "{message}");
    let message = bind_error(addr, std::io::Error::other("odd")).to_string();
    assert_eq!(message, "cannot listen for metrics on 127.0.0.1:9470: odd");
}
