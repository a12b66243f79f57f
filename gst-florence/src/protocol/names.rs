//! The names of the metas, the bus message and the structures the element
//! and its applications exchange (`FLORENCE_CAPTION_META`,
//! `FLORENCE_CAPTION_MESSAGE` and `FLORENCE_REQUEST_META` in florence.h).

/// The custom meta carrying results (`FlorenceCaptionMeta`).
pub const META_NAME: &str = "FlorenceCaptionMeta";
/// The element message posted for every new result.
pub const MESSAGE_NAME: &str = "florence-caption";
/// The custom meta an application puts on an input buffer to give that
/// buffer its own request (every-frame mode); its fields are
/// [`RequestField`](super::RequestField)s.
pub const REQUEST_META_NAME: &str = "FlorenceRequestMeta";
/// The structure of a result's `request` field: what was asked.
pub const ASKED_NAME: &str = "FlorenceRequest";
/// The structure of the meta's `results` field: element name -> its result.
pub const RESULTS_NAME: &str = "FlorenceResults";
