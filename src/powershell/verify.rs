//! Placeholder: the sound script checker (being written).
