//! PKCS#11 backend (placeholder until the backend lands).
