use super::*;

fn refused(kind: InvocationType, payload: &[u8]) -> String {
    match check_payload(kind, payload) {
        Err(InvokeError::InvalidContent(m)) | Err(InvokeError::TooLarge(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn payloads_are_json_within_the_invocation_types_limit() {
    assert!(check_payload(InvocationType::RequestResponse, b"").is_ok());
    assert!(check_payload(InvocationType::RequestResponse, br#"{"a": "\u00e9"}"#).is_ok());
    assert!(check_payload(InvocationType::Event, "{\"a\": \"é\"}".as_bytes()).is_ok());
    assert!(
        refused(InvocationType::RequestResponse, b"{\"a\":").starts_with(
            "Could not parse request body into json: Could not parse payload into json: "
        )
    );
    let mut big = vec![b'x'; limits::ASYNC_REQUEST_MAX_BYTES + 1];
    big[0] = b'"';
    *big.last_mut().unwrap() = b'"';
    assert_eq!(
        refused(InvocationType::Event, &big),
        format!(
            "{} byte payload is too large for the Event invocation type (limit {} bytes)",
            big.len(),
            limits::ASYNC_REQUEST_MAX_BYTES
        )
    );
    assert!(check_payload(InvocationType::RequestResponse, &big).is_ok());
}

#[test]
fn invalid_utf8_inside_a_json_string_is_refused() {
    // The JSON parser alone would skip these string bytes unchecked.
    let mut payload = b"{\"k\": \"".to_vec();
    payload.extend_from_slice(&[0xff, 0xfe]);
    payload.extend_from_slice(b"\"}");
    assert_eq!(
        refused(InvocationType::RequestResponse, &payload),
        "Could not parse request body into json: Could not parse payload into json: Invalid UTF-8 start byte 0xff"
    );
    assert_eq!(
        refused(InvocationType::RequestResponse, b"{\"k\": \"\xe2(\"}"),
        "Could not parse request body into json: Could not parse payload into json: Invalid UTF-8 middle byte 0x28"
    );
    assert!(matches!(
        check_payload(InvocationType::Event, &payload),
        Err(InvokeError::InvalidContent(_))
    ));
}
