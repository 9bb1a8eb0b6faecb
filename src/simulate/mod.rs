//! `koogate simulate`: KooGallery's debugger in a box.

pub mod case;
pub mod client;
