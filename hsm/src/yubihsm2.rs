//! YubiHSM 2 backend (placeholder until the backend lands).
