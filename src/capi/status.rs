//! Status codes and how every error of the library maps onto them.

use std::ffi::c_char;

use gptoss_engine::EngineError;
use gptoss_model_gpt_oss::ModelError;

use crate::Error;

/// Mirrors `enum gptoss_status` in include/gptoss.h.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gptoss_status {
    GPTOSS_SUCCESS = 0,
    GPTOSS_INVALID_ARGUMENT = 1,
    GPTOSS_BUFFER_TOO_SMALL = 2,
    GPTOSS_IO_ERROR = 3,
    GPTOSS_INVALID_MODEL = 4,
    GPTOSS_UNSUPPORTED = 5,
    GPTOSS_CONTEXT_OVERFLOW = 6,
    GPTOSS_OUT_OF_MEMORY = 7,
    GPTOSS_BACKEND_ERROR = 8,
    GPTOSS_INTERNAL_ERROR = 9,
}

use gptoss_status::*;

/// A failed call: its status and message.
pub struct Failure {
    pub status: gptoss_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: gptoss_status, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(GPTOSS_INVALID_ARGUMENT, message)
    }

    /// A required pointer argument was NULL.
    pub fn null(what: &str) -> Self {
        Self::invalid(format!("{what} is NULL"))
    }
}

fn engine_status(e: &EngineError) -> gptoss_status {
    match e {
        EngineError::Shape { .. } | EngineError::TokenOutOfRange { .. } | EngineError::InvalidArgument(_) => GPTOSS_INVALID_ARGUMENT,
        EngineError::Unsupported { .. } => GPTOSS_UNSUPPORTED,
        EngineError::ContextOverflow { .. } => GPTOSS_CONTEXT_OVERFLOW,
        EngineError::OutOfMemory { .. } => GPTOSS_OUT_OF_MEMORY,
        EngineError::Backend { .. } => GPTOSS_BACKEND_ERROR,
        EngineError::WeightRead { .. } => GPTOSS_IO_ERROR,
        // NaN or infinite logits come from weights that hold them (or overflow they cause).
        EngineError::NonFiniteLogits { .. } => GPTOSS_INVALID_MODEL,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Model(ModelError::Io { .. }) | Error::Io(_) => GPTOSS_IO_ERROR,
            Error::Model(ModelError::UnknownModel(_)) | Error::Usage(_) => GPTOSS_INVALID_ARGUMENT,
            Error::Unsupported(_) => GPTOSS_UNSUPPORTED,
            Error::Model(ModelError::Engine(e)) | Error::Engine(e) => engine_status(e),
            Error::Model(ModelError::TooLarge { .. } | ModelError::Budget { .. }) => GPTOSS_OUT_OF_MEMORY,
            Error::Model(ModelError::Residency(_)) => GPTOSS_UNSUPPORTED,
            Error::Model(_) => GPTOSS_INVALID_MODEL,
            Error::Tokenizer(_) | Error::Harmony(_) => GPTOSS_INVALID_ARGUMENT,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::new(engine_status(&e), e.to_string())
    }
}

impl From<ModelError> for Failure {
    fn from(e: ModelError) -> Self {
        Error::from(e).into()
    }
}

/// A static description of a status.
#[unsafe(no_mangle)]
pub extern "C" fn gptoss_status_string(status: i32) -> *const c_char {
    let s: &'static str = match status {
        0 => "success\0",
        1 => "invalid argument\0",
        2 => "buffer too small\0",
        3 => "I/O error\0",
        4 => "invalid model\0",
        5 => "unsupported\0",
        6 => "context overflow\0",
        7 => "out of memory\0",
        8 => "backend error\0",
        9 => "internal error\0",
        _ => "unknown status\0",
    };
    s.as_ptr().cast()
}
