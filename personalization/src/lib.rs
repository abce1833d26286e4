//! placeholder: this crate arrives with its issue
