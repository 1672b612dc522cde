//! Which certificates the S3 client trusts over HTTPS: the system's roots, plus the CA
//! certificates of `aws_s3_ca_file` for a store whose certificate a private or
//! self-signed CA issued (MinIO, Ceph, a lab store).
//!
//! Owns: reading that file and the system's bundle into ureq's terms. Must not: make
//! connections or decide what a TLS failure means (`client`).

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts};

/// The roots for S3 requests: the platform's alone when no CA file is set.
pub(super) fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts, String> {
    let Some(path) = ca_file else {
        return Ok(RootCerts::PlatformVerifier);
    };
    let mut roots = pem_certificates(path)?;
    // Specific roots replace the platform's: keep those too (AWS and public stores
    // stay reachable next to the private one).
    if let Some(bundle) = openssl_probe::probe().cert_file {
        roots.extend(pem_certificates(&bundle).unwrap_or_default());
    }
    Ok(RootCerts::Specific(Arc::new(roots)))
}

/// The certificates of a PEM file (other items, such as a key, are skipped); an error
/// names the file and says what is wrong with it.
pub(super) fn pem_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let what = |why: String| format!("aws_s3_ca_file {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| what(format!("cannot read it ({e})")))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| what(format!("bad PEM ({e})")))? {
            certs.push(c.to_owned());
        }
    }
    if certs.is_empty() {
        return Err(what("no PEM certificate in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_file_is_refused_with_its_name() {
        let e = root_certs(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            e.starts_with("aws_s3_ca_file /nonexistent/ca.pem: cannot read it"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("reelcast-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = root_certs(Some(&empty)).unwrap_err();
        assert!(e.ends_with("no PEM certificate in it"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A self-signed CA certificate in PEM, made with OpenSSL.
    fn ca_pem() -> Vec<u8> {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "reelcast test CA").unwrap();
        let name = name.build();
        let mut cert = x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        cert.build().to_pem().unwrap()
    }

    #[test]
    fn the_ca_file_is_trusted_next_to_the_system_bundle() {
        let dir = std::env::temp_dir().join(format!("reelcast-trust-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_pem()).unwrap();
        let system = openssl_probe::probe()
            .cert_file
            .map_or(0, |f| pem_certificates(&f).unwrap().len());
        let RootCerts::Specific(roots) = root_certs(Some(&ca)).unwrap() else {
            panic!("a CA file gives specific roots");
        };
        assert_eq!(
            roots.len(),
            1 + system,
            "the CA and the {system} system roots"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_file_means_the_platform_roots() {
        assert!(matches!(root_certs(None), Ok(RootCerts::PlatformVerifier)));
    }
}
