//! Reservation writes: edit the config file, validate it with the server's own loader, replace
//! it atomically, reload, and answer only once the running server decides with the new plan.
//!
//! The editing itself lives in [`leased_io::config_edit`], shared with `leased manage
//! add/remove`, so the API and the CLI cannot disagree on what a valid edit is or how the file
//! is rewritten, and both take its advisory lock on the file (`.<name>.lock`, held from read to
//! rename), so an API write and a `manage` run at the same moment both land; this module maps
//! its errors to HTTP answers.
//!
//! The request body is a reservation exactly as the config file spells it
//! (`{"mac": "...", "ip": "...", "hostname": "...", "note": "...", "options": {...}}`, or any
//! other reservation key the loader accepts), so the loader, not this module, decides what is
//! valid, and its `file:line:col` errors come back in the 422 answer.

pub use leased_config::edit::{
    Edit, EditError, EditErrorKind, apply, body_ip, edit_json, edit_toml, is_json,
};

use axum::http::StatusCode;

use crate::error::{ApiError, ErrorBody};

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        let status = match e.kind {
            EditErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            EditErrorKind::NotFound => StatusCode::NOT_FOUND,
            EditErrorKind::Conflict => StatusCode::CONFLICT,
            EditErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            EditErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            body: ErrorBody {
                message: e.message,
                errors: e.errors,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let s = |e: EditError| ApiError::from(e).status.as_u16();
        assert_eq!(s(EditError::conflict("x")), 409);
        assert_eq!(s(EditError::not_found("x")), 404);
        assert_eq!(s(EditError::bad_request("x")), 400);
        assert_eq!(s(EditError::internal("x")), 500);
        let e = ApiError::from(EditError::invalid("bad", vec!["f:1:1: k: m".into()]));
        assert_eq!((e.status.as_u16(), e.body.errors.len()), (422, 1));
    }
}
