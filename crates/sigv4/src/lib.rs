//! AWS Signature Version 4, server side: parse the `Authorization` header (or the
//! `X-Amz-*` query parameters of a presigned URL), rebuild the canonical request
//! from what arrived on the wire, and compare signatures in constant time.
//!
//! The crate also signs (`sign_headers`), for Lambent's own CLI and tests. It never
//! looks up keys: [`parse`] yields the access key id, the caller finds the secret,
//! then [`verify`] checks the signature.

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's timestamp may be from the server clock (Lambda: 5 min).
pub const DEFAULT_SKEW_S: i64 = 5 * 60;

/// The longest validity a presigned URL may ask for (7 days).
pub const MAX_PRESIGN_EXPIRES_S: i64 = 604_800;

/// What went wrong with a request's signature. Each variant maps to one AWS error
/// code; `Display` is AWS's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header and no presigned query.
    #[error("Missing Authentication Token")]
    Missing,
    /// The authorization data is malformed or incomplete.
    #[error("{0}")]
    Incomplete(String),
    /// The credential scope names the wrong service or region, or a bad date.
    #[error("{0}")]
    BadScope(String),
    /// The request time is outside the allowed window, or a presigned URL expired.
    #[error("{0}")]
    Expired(String),
    /// The signature does not match the one computed here.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
    )]
    Mismatch {
        canonical_request: String,
        string_to_sign: String,
    },
}

impl SigError {
    /// The AWS error code (`x-amzn-ErrorType`) for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::BadScope(_) | Self::Expired(_) | Self::Mismatch { .. } => {
                "InvalidSignatureException"
            }
        }
    }
}

/// A request as it arrived: method, raw (still percent-encoded) path, raw query.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// Signed through the `Authorization` header.
    Header,
    /// Presigned URL valid for `expires_s` seconds after its timestamp.
    Query { expires_s: i64 },
}

/// The authentication data of a request, parsed but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub access_key: String,
    /// `YYYYMMDD` from the credential scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    /// The request timestamp, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// The request timestamp in Unix seconds.
    pub timestamp: i64,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub security_token: Option<String>,
    pub style: Style,
}

impl Auth {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.scope_date, self.region, self.service
        )
    }
}

/// Parses the signature data of a request (header or presigned query form).
pub fn parse(req: &Request<'_>) -> Result<Auth, SigError> {
    if let Some(value) = req.headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| SigError::Incomplete("Authorization header is not valid text".into()))?;
        return parse_header(value, req.headers);
    }
    if query_has(req.query, "X-Amz-Algorithm") || query_has(req.query, "X-Amz-Signature") {
        return parse_query(req.query);
    }
    Err(SigError::Missing)
}

fn query_has(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv.split('=').next().is_some_and(|k| k == name))
}

fn parse_header(value: &str, headers: &http::HeaderMap) -> Result<Auth, SigError> {
    let rest = value.strip_prefix(ALGORITHM).ok_or_else(|| {
        SigError::Incomplete(format!(
            "Authorization header requires the {ALGORITHM} algorithm, found '{}'",
            value.split_whitespace().next().unwrap_or("")
        ))
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            SigError::Incomplete(format!(
                "Authorization header requires each component to be of the form key=value; found '{part}'"
            ))
        })?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(SigError::Incomplete(format!(
                "Authorization header has a duplicate '{k}' component"
            )));
        }
        *slot = Some(v.to_owned());
    }
    let mut missing = String::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed),
    ] {
        if slot.is_none() {
            let _ = write!(
                missing,
                "Authorization header requires '{name}' parameter. "
            );
        }
    }
    if !missing.is_empty() {
        let _ = write!(missing, "Authorization={value}");
        return Err(SigError::Incomplete(missing));
    }
    let (credential, signed, signature) = (
        credential.unwrap_or_default(),
        signed.unwrap_or_default(),
        signature.unwrap_or_default(),
    );
    let amz_date = header_str(headers, "x-amz-date").ok_or_else(|| {
        SigError::Incomplete(format!(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={value}"
        ))
    })?;
    let security_token = header_str(headers, "x-amz-security-token").map(str::to_owned);
    build_auth(
        &credential,
        &signed,
        &signature,
        amz_date,
        security_token,
        Style::Header,
    )
}

fn header_str<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn parse_query(query: &str) -> Result<Auth, SigError> {
    let params = decode_query(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let algorithm = get("X-Amz-Algorithm").unwrap_or("");
    if algorithm != ALGORITHM {
        return Err(SigError::Incomplete(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\""
        )));
    }
    let mut missing = Vec::new();
    for name in [
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
        "X-Amz-Expires",
    ] {
        if get(name).is_none() {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(SigError::Incomplete(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing.join(", ")
        )));
    }
    let expires_s: i64 = get("X-Amz-Expires")
        .and_then(|e| e.parse().ok())
        .filter(|e| *e >= 0)
        .ok_or_else(|| SigError::Incomplete("X-Amz-Expires must be non-negative".into()))?;
    if expires_s > MAX_PRESIGN_EXPIRES_S {
        return Err(SigError::Incomplete(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES_S}"
        )));
    }
    build_auth(
        get("X-Amz-Credential").unwrap_or(""),
        get("X-Amz-SignedHeaders").unwrap_or(""),
        get("X-Amz-Signature").unwrap_or(""),
        get("X-Amz-Date").unwrap_or(""),
        get("X-Amz-Security-Token").map(str::to_owned),
        Style::Query { expires_s },
    )
}

fn build_auth(
    credential: &str,
    signed: &str,
    signature: &str,
    amz_date: &str,
    security_token: Option<String>,
    style: Style,
) -> Result<Auth, SigError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, scope_date, region, service, terminator] = parts[..] else {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{credential}'. "
        )));
    };
    if terminator != "aws4_request" {
        return Err(SigError::BadScope(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )));
    }
    let timestamp = parse_amz_date(amz_date).ok_or_else(|| {
        SigError::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;
    if !amz_date.starts_with(scope_date) {
        return Err(SigError::BadScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
            &amz_date[..8]
        )));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        return Err(SigError::Incomplete(
            "SignedHeaders must name at least one header".into(),
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Incomplete(format!(
            "Signature must be 64 hexadecimal characters, got '{signature}'"
        )));
    }
    Ok(Auth {
        access_key: access_key.to_owned(),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        amz_date: amz_date.to_owned(),
        timestamp,
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        security_token,
        style,
    })
}

/// Parses `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(se).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Formats Unix seconds as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(unix_s: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What the server expects of the signature besides the key itself.
pub struct Expectation<'a> {
    pub service: &'a str,
    /// The region this server answers for; `None` accepts any well-formed region.
    pub region: Option<&'a str>,
    pub now_s: i64,
    pub max_skew_s: i64,
}

/// Checks scope, time window and signature. `payload_sha256_hex` is the SHA-256
/// of the body actually received.
pub fn verify(
    req: &Request<'_>,
    auth: &Auth,
    secret: &str,
    payload_sha256_hex: &str,
    expect: &Expectation<'_>,
) -> Result<(), SigError> {
    if auth.service != expect.service {
        return Err(SigError::BadScope(format!(
            "Credential should be scoped to correct service: '{}'. ",
            expect.service
        )));
    }
    if let Some(region) = expect.region
        && auth.region != region
    {
        return Err(SigError::BadScope(
            "Credential should be scoped to a valid region. ".into(),
        ));
    }
    check_time(auth, expect)?;
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let key = signing_key(secret, &auth.scope_date, &auth.region, &auth.service);
    verify_with_key(req, auth, &key, payload_sha256_hex)
}

/// Like [`verify`]'s last step, with a signing key the caller cached
/// (see [`signing_key`]). Scope and time must already have been checked.
pub fn verify_with_key(
    req: &Request<'_>,
    auth: &Auth,
    key: &[u8; 32],
    payload_sha256_hex: &str,
) -> Result<(), SigError> {
    let payload = match auth.style {
        Style::Header => header_str(req.headers, "x-amz-content-sha256")
            .filter(|v| *v == payload_sha256_hex)
            .unwrap_or(payload_sha256_hex),
        Style::Query { .. } => payload_sha256_hex,
    };
    let canonical_request = canonical_request(req, auth, payload);
    let string_to_sign = string_to_sign(&auth.amz_date, &auth.scope(), &canonical_request);
    let expected = hex::encode(hmac(key, string_to_sign.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigError::Mismatch {
            canonical_request,
            string_to_sign,
        })
    }
}

/// Checks the request time against the window (header) or the expiry (presigned).
pub fn check_time(auth: &Auth, expect: &Expectation<'_>) -> Result<(), SigError> {
    let now = expect.now_s;
    let skew = expect.max_skew_s;
    let now_str = format_amz_date(now);
    match auth.style {
        Style::Header => {
            if auth.timestamp < now - skew {
                return Err(SigError::Expired(format!(
                    "Signature expired: {} is now earlier than {} ({} - {} min.)",
                    auth.amz_date,
                    format_amz_date(now - skew),
                    now_str,
                    skew / 60
                )));
            }
            if auth.timestamp > now + skew {
                return Err(SigError::Expired(format!(
                    "Signature not yet current: {} is still later than {} ({} + {} min.)",
                    auth.amz_date,
                    format_amz_date(now + skew),
                    now_str,
                    skew / 60
                )));
            }
        }
        Style::Query { expires_s } => {
            if auth.timestamp > now + skew {
                return Err(SigError::Expired(format!(
                    "Signature not yet current: {} is still later than {} ({} + {} min.)",
                    auth.amz_date,
                    format_amz_date(now + skew),
                    now_str,
                    skew / 60
                )));
            }
            if now > auth.timestamp + expires_s {
                return Err(SigError::Expired(format!(
                    "Signature expired: {} is now earlier than {} ({} - {} sec.)",
                    format_amz_date(auth.timestamp + expires_s),
                    now_str,
                    now_str,
                    expires_s
                )));
            }
        }
    }
    Ok(())
}

/// Hex SHA-256, as used for payload hashes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // An HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key: HMAC chain over `"AWS4"+secret`, date, region, service,
/// `aws4_request`. Callers may cache it per (secret, date, region, service).
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The canonical request, rebuilt from what arrived.
pub fn canonical_request(req: &Request<'_>, auth: &Auth, payload_hash: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    let exclude = match auth.style {
        Style::Query { .. } => Some("X-Amz-Signature"),
        Style::Header => None,
    };
    out.push_str(&canonical_query(req.query, exclude));
    out.push('\n');
    for name in &auth.signed_headers {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for v in req.headers.get_all(name.as_str()) {
            if !first {
                out.push(',');
            }
            first = false;
            push_trimmed(&mut out, v.as_bytes());
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&auth.signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// Trims a header value and collapses runs of whitespace to one space.
fn push_trimmed(out: &mut String, value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    let mut first = true;
    for word in text.split_ascii_whitespace() {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(word);
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// AWS's URI encoding: every byte but the unreserved set becomes `%XX`.
pub fn uri_encode(out: &mut String, input: &[u8], keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The canonical URI of a non-S3 service: the path as sent, with dot segments
/// and empty segments removed, then URI-encoded (so `%3A` on the wire becomes
/// `%253A`, the "double encoding" every SDK applies outside S3).
pub fn canonical_uri(raw_path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in raw_path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = raw_path.ends_with('/') && !segments.is_empty();
    let mut out = String::with_capacity(raw_path.len() + 16);
    for s in &segments {
        out.push('/');
        uri_encode(&mut out, s.as_bytes(), false);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes a raw query string into (name, value) pairs.
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                String::from_utf8_lossy(&percent_decode(k)).into_owned(),
                String::from_utf8_lossy(&percent_decode(v)).into_owned(),
            )
        })
        .collect()
}

/// The canonical query string: each name and value decoded, re-encoded, sorted.
pub fn canonical_query(raw_query: &str, exclude: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            if exclude.is_some_and(|x| x.as_bytes() == k.as_slice()) {
                return None;
            }
            let mut ek = String::new();
            uri_encode(&mut ek, &k, false);
            let mut ev = String::new();
            uri_encode(&mut ev, &v, false);
            Some((ek, ev))
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Credentials for signing.
pub struct Credentials<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub session_token: Option<&'a str>,
}

/// Who signs, for which region and service, at what time.
pub struct Signer<'a> {
    pub creds: Credentials<'a>,
    pub region: &'a str,
    pub service: &'a str,
    pub now_s: i64,
}

/// Signs a request in place: adds `x-amz-date`, `x-amz-security-token` (when
/// present) and `authorization`. Every header already in `headers` is signed.
/// `path` and `query` are exactly what will be sent on the wire.
pub fn sign_headers(
    method: &str,
    path: &str,
    query: &str,
    headers: &mut http::HeaderMap,
    body: &[u8],
    signer: &Signer<'_>,
) {
    let Signer {
        creds,
        region,
        service,
        now_s,
    } = signer;
    let (region, service, now_s) = (*region, *service, *now_s);
    let amz_date = format_amz_date(now_s);
    if let Ok(v) = http::HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    if let Some(token) = creds.session_token
        && let Ok(v) = http::HeaderValue::from_str(token)
    {
        headers.insert("x-amz-security-token", v);
    }
    headers.remove(http::header::AUTHORIZATION);
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    let auth = Auth {
        access_key: creds.access_key.to_owned(),
        scope_date: amz_date[..8].to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        amz_date: amz_date.clone(),
        timestamp: now_s,
        signed_headers: names,
        signature: String::new(),
        security_token: creds.session_token.map(str::to_owned),
        style: Style::Header,
    };
    let req = Request {
        method,
        path,
        query,
        headers,
    };
    let canonical = canonical_request(&req, &auth, &sha256_hex(body));
    let sts = string_to_sign(&amz_date, &auth.scope(), &canonical);
    let key = signing_key(creds.secret, &auth.scope_date, region, service);
    let signature = hex::encode(hmac(&key, sts.as_bytes()));
    let value = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
        creds.access_key,
        auth.scope(),
        auth.signed_headers.join(";")
    );
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod suite;
