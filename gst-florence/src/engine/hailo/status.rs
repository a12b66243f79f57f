//! HailoRT's status numbers and the typed errors the engine maps them to.
//!
//! The bridge returns `hailo_status` as a plain number; this is the one place
//! that gives those numbers a meaning. The numbers are HailoRT's (`hailort.h`,
//! identical in 4.23 and 5.x for 0-93; 5.x adds 94-97).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::ffi::HailoRtVersion;
use crate::engine::error::EngineError;
use crate::engine::failure::{BackendFailure, FailureKind};

/// A raw `hailo_status`, printed with its HailoRT name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    pub const SUCCESS: Status = Status(0);
    pub const INVALID_ARGUMENT: Status = Status(2);
    pub const OUT_OF_HOST_MEMORY: Status = Status(3);
    pub const TIMEOUT: Status = Status(4);
    pub const INVALID_OPERATION: Status = Status(6);
    pub const NOT_IMPLEMENTED: Status = Status(7);
    pub const INTERNAL_FAILURE: Status = Status(8);
    pub const OPEN_FILE_FAILURE: Status = Status(13);
    pub const INVALID_HEF: Status = Status(26);
    pub const DRIVER_OPERATION_FAILED: Status = Status(36);
    pub const NOT_FOUND: Status = Status(61);
    pub const COMMUNICATION_CLOSED: Status = Status(62);
    pub const STREAM_ABORT: Status = Status(63);
    pub const DRIVER_NOT_INSTALLED: Status = Status(64);
    pub const DEVICE_IN_USE: Status = Status(73);
    pub const OUT_OF_PHYSICAL_DEVICES: Status = Status(74);
    pub const INVALID_DEVICE_ARCHITECTURE: Status = Status(75);
    pub const INVALID_DRIVER_VERSION: Status = Status(76);
    pub const RPC_FAILED: Status = Status(77);
    pub const NOT_SUPPORTED: Status = Status(79);
    pub const DRIVER_TIMEOUT: Status = Status(87);
    pub const CONNECTION_REFUSED: Status = Status(89);
    pub const HEF_FILE_CORRUPTED: Status = Status(91);
    pub const HEF_NOT_SUPPORTED: Status = Status(92);
    pub const HEF_NOT_COMPATIBLE_WITH_DEVICE: Status = Status(93);
    pub const INVALID_HEF_USE: Status = Status(94);
    pub const OPERATION_ABORTED: Status = Status(95);
    pub const DEVICE_NOT_CONNECTED: Status = Status(96);
    pub const DEVICE_TEMPORARILY_UNAVAILABLE: Status = Status(97);

    /// HailoRT's name for the number (`HAILO_TIMEOUT`), or `None` for a number
    /// no known release uses.
    pub fn name(self) -> Option<&'static str> {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown HailoRT status {}", self.0),
        }
    }
}

/// `hailo_status` names by number, from HailoRT 5.2's `hailort.h`.
const NAMES: [&str; 98] = [
    "HAILO_SUCCESS",
    "HAILO_UNINITIALIZED",
    "HAILO_INVALID_ARGUMENT",
    "HAILO_OUT_OF_HOST_MEMORY",
    "HAILO_TIMEOUT",
    "HAILO_INSUFFICIENT_BUFFER",
    "HAILO_INVALID_OPERATION",
    "HAILO_NOT_IMPLEMENTED",
    "HAILO_INTERNAL_FAILURE",
    "HAILO_DATA_ALIGNMENT_FAILURE",
    "HAILO_CHUNK_TOO_LARGE",
    "HAILO_INVALID_LOGGER_LEVEL",
    "HAILO_CLOSE_FAILURE",
    "HAILO_OPEN_FILE_FAILURE",
    "HAILO_FILE_OPERATION_FAILURE",
    "HAILO_UNSUPPORTED_CONTROL_PROTOCOL_VERSION",
    "HAILO_UNSUPPORTED_FW_VERSION",
    "HAILO_INVALID_CONTROL_RESPONSE",
    "HAILO_FW_CONTROL_FAILURE",
    "HAILO_ETH_FAILURE",
    "HAILO_ETH_INTERFACE_NOT_FOUND",
    "HAILO_ETH_RECV_FAILURE",
    "HAILO_ETH_SEND_FAILURE",
    "HAILO_INVALID_FIRMWARE",
    "HAILO_INVALID_CONTEXT_COUNT",
    "HAILO_INVALID_FRAME",
    "HAILO_INVALID_HEF",
    "HAILO_PCIE_NOT_SUPPORTED_ON_PLATFORM",
    "HAILO_INTERRUPTED_BY_SIGNAL",
    "HAILO_START_VDMA_CHANNEL_FAIL",
    "HAILO_SYNC_VDMA_BUFFER_FAIL",
    "HAILO_STOP_VDMA_CHANNEL_FAIL",
    "HAILO_CLOSE_VDMA_CHANNEL_FAIL",
    "HAILO_ATR_TABLES_CONF_VALIDATION_FAIL",
    "HAILO_EVENT_CREATE_FAIL",
    "HAILO_READ_EVENT_FAIL",
    "HAILO_DRIVER_OPERATION_FAILED",
    "HAILO_INVALID_FIRMWARE_MAGIC",
    "HAILO_INVALID_FIRMWARE_CODE_SIZE",
    "HAILO_INVALID_KEY_CERTIFICATE_SIZE",
    "HAILO_INVALID_CONTENT_CERTIFICATE_SIZE",
    "HAILO_MISMATCHING_FIRMWARE_BUFFER_SIZES",
    "HAILO_INVALID_FIRMWARE_CPU_ID",
    "HAILO_CONTROL_RESPONSE_MD5_MISMATCH",
    "HAILO_GET_CONTROL_RESPONSE_FAIL",
    "HAILO_GET_D2H_EVENT_MESSAGE_FAIL",
    "HAILO_MUTEX_INIT_FAIL",
    "HAILO_OUT_OF_DESCRIPTORS",
    "HAILO_UNSUPPORTED_OPCODE",
    "HAILO_USER_MODE_RATE_LIMITER_NOT_SUPPORTED",
    "HAILO_RATE_LIMIT_MAXIMUM_BANDWIDTH_EXCEEDED",
    "HAILO_ANSI_TO_UTF16_CONVERSION_FAILED",
    "HAILO_UTF16_TO_ANSI_CONVERSION_FAILED",
    "HAILO_UNEXPECTED_INTERFACE_INFO_FAILURE",
    "HAILO_UNEXPECTED_ARP_TABLE_FAILURE",
    "HAILO_MAC_ADDRESS_NOT_FOUND",
    "HAILO_NO_IPV4_INTERFACES_FOUND",
    "HAILO_SHUTDOWN_EVENT_SIGNALED",
    "HAILO_THREAD_ALREADY_ACTIVATED",
    "HAILO_THREAD_NOT_ACTIVATED",
    "HAILO_THREAD_NOT_JOINABLE",
    "HAILO_NOT_FOUND",
    "HAILO_COMMUNICATION_CLOSED",
    "HAILO_STREAM_ABORT",
    "HAILO_DRIVER_NOT_INSTALLED",
    "HAILO_NOT_AVAILABLE",
    "HAILO_TRAFFIC_CONTROL_FAILURE",
    "HAILO_INVALID_SECOND_STAGE",
    "HAILO_INVALID_PIPELINE",
    "HAILO_NETWORK_GROUP_NOT_ACTIVATED",
    "HAILO_VSTREAM_PIPELINE_NOT_ACTIVATED",
    "HAILO_OUT_OF_FW_MEMORY",
    "HAILO_STREAM_NOT_ACTIVATED",
    "HAILO_DEVICE_IN_USE",
    "HAILO_OUT_OF_PHYSICAL_DEVICES",
    "HAILO_INVALID_DEVICE_ARCHITECTURE",
    "HAILO_INVALID_DRIVER_VERSION",
    "HAILO_RPC_FAILED",
    "HAILO_INVALID_SERVICE_VERSION",
    "HAILO_NOT_SUPPORTED",
    "HAILO_NMS_BURST_INVALID_DATA",
    "HAILO_OUT_OF_HOST_CMA_MEMORY",
    "HAILO_QUEUE_IS_FULL",
    "HAILO_DMA_MAPPING_ALREADY_EXISTS",
    "HAILO_CANT_MEET_BUFFER_REQUIREMENTS",
    "HAILO_DRIVER_INVALID_RESPONSE",
    "HAILO_DRIVER_INVALID_IOCTL",
    "HAILO_DRIVER_TIMEOUT",
    "HAILO_DRIVER_INTERRUPTED",
    "HAILO_CONNECTION_REFUSED",
    "HAILO_DRIVER_WAIT_CANCELED",
    "HAILO_HEF_FILE_CORRUPTED",
    "HAILO_HEF_NOT_SUPPORTED",
    "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE",
    "HAILO_INVALID_HEF_USE",
    "HAILO_OPERATION_ABORTED",
    "HAILO_DEVICE_NOT_CONNECTED",
    "HAILO_DEVICE_TEMPORARILY_UNAVAILABLE",
];

/// What the engine asked of the bridge when a status came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    OpenDevice { group_id: String },
    LoadModel { hef: PathBuf },
    DescribeStreams { hef: PathBuf },
    Run { network: String, timeout: Duration },
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::OpenDevice { group_id } => {
                write!(f, "opening the Hailo device (group id {group_id:?})")
            }
            Call::LoadModel { hef } => write!(f, "loading {}", hef.display()),
            Call::DescribeStreams { hef } => write!(f, "reading the streams of {}", hef.display()),
            Call::Run { network, timeout } => {
                write!(f, "running {network} (timeout {} ms)", timeout.as_millis())
            }
        }
    }
}

/// A Hailo failure, classified by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HailoError {
    /// Another process holds the chip (hailo-ollama keeps it for its
    /// keep-alive); retryable.
    #[error(
        "the Hailo device is busy ({status}, while {call}): another process holds it (hailo-ollama keeps it for its keep-alive, 5 minutes by default); retry later"
    )]
    Busy { status: Status, call: Call },
    /// The kernel driver is missing, not running or does not match libhailort.
    #[error(
        "the Hailo driver is not usable ({status}, while {call}): install and load the hailort PCIe driver matching libhailort, and check that /dev/hailo0 exists and is accessible"
    )]
    NoDriver { status: Status, call: Call },
    /// The HEF was compiled for another chip (the public Florence-2 HEFs are for Hailo-8).
    #[error(
        "{} was compiled for another Hailo chip ({status}): the public Florence-2 HEFs are for Hailo-8; a Hailo-10H needs HEFs compiled for hailo10h with Hailo's Dataflow Compiler",
        hef.display()
    )]
    WrongChip { status: Status, hef: PathBuf },
    /// The HEF file cannot be opened.
    #[error("cannot open the HEF {} ({status})", hef.display())]
    HefMissing { status: Status, hef: PathBuf },
    /// The file is not a HEF this HailoRT can use.
    #[error("{} is not a HEF this HailoRT can use ({status})", hef.display())]
    HefUnusable { status: Status, hef: PathBuf },
    /// The HEF's inputs and outputs are not those of Florence-2's split.
    #[error("{}: {problem}", hef.display())]
    Streams { hef: PathBuf, problem: String },
    /// A run did not finish in time; the device is reopened before the next run.
    #[error("the Hailo device did not finish {call} ({status})")]
    Timeout { status: Status, call: Call },
    /// The device or its service went away; the next request reopens it.
    #[error("the Hailo device was lost ({status}, while {call}); the next request reopens it")]
    Disconnected { status: Status, call: Call },
    /// The runtime cannot do this on this chip (HailoRT 4.x on a Hailo-10H, ...).
    #[error("HailoRT does not support this ({status}, while {call}); Hailo-10H needs HailoRT 5.x")]
    Unsupported { status: Status, call: Call },
    /// The engine and the bridge disagree about a stream name or a frame size:
    /// a defect, or a HEF that changed under a loaded model.
    #[error("the Hailo bridge refused the call ({status}, while {call})")]
    Contract { status: Status, call: Call },
    /// Any other status.
    #[error("HailoRT failed with {status} while {call}")]
    Other { status: Status, call: Call },
    /// No libhailort on this machine (HailoRT is not installed).
    #[error(
        "no HailoRT library on this machine (looked for {looked}): install HailoRT (5.x for Hailo-10H, 4.x for Hailo-8/8L) to use the Hailo device"
    )]
    NoHailoRt { looked: String },
    /// A libhailort was found but cannot be loaded or asked for its version.
    #[error("the HailoRT library {} cannot be used: {reason}", path.display())]
    HailoRtUnusable { path: PathBuf, reason: String },
    /// HailoRT is installed, but no bridge for its major version is.
    #[error(
        "HailoRT {version} found ({}) but no bridge for HailoRT {} is installed: looked for {file} in {}",
        hailort.display(),
        version.major,
        list(dirs)
    )]
    NoBridge {
        version: HailoRtVersion,
        hailort: PathBuf,
        file: String,
        dirs: Vec<PathBuf>,
    },
    /// The bridge was compiled against another HailoRT major than the library's.
    #[error(
        "the Hailo bridge {} was built for HailoRT {built_for}, but the HailoRT library is {version}: install the bridge for HailoRT {}",
        bridge.display(),
        version.major
    )]
    BridgeForOtherHailoRt {
        bridge: PathBuf,
        built_for: u32,
        version: HailoRtVersion,
    },
    /// The bridge speaks another version of the project's C ABI.
    #[error(
        "the Hailo bridge {} has ABI version {found}, this engine needs {expected}: install the bridge of the same florence release",
        bridge.display()
    )]
    BridgeAbi {
        bridge: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The bridge library cannot be loaded (a missing file or symbol, a
    /// HailoRT symbol the installed libhailort lacks, ...).
    #[error("the Hailo bridge {} cannot be loaded: {reason}", path.display())]
    Library { path: PathBuf, reason: String },
    /// The device was used before it was opened (a defect).
    #[error("the Hailo device is not open")]
    NotOpen,
}

impl HailoError {
    /// Classifies a non-success status returned by `call`.
    pub fn from_status(status: Status, call: Call) -> HailoError {
        let hef = match &call {
            Call::LoadModel { hef } | Call::DescribeStreams { hef } => Some(hef.clone()),
            _ => None,
        };
        match (status.0, hef) {
            (73 | 74 | 97, _) => HailoError::Busy { status, call },
            (64 | 76 | 85 | 86, _) => HailoError::NoDriver { status, call },
            (75 | 93, Some(hef)) => HailoError::WrongChip { status, hef },
            (13, Some(hef)) => HailoError::HefMissing { status, hef },
            (26 | 91 | 92 | 94, Some(hef)) => HailoError::HefUnusable { status, hef },
            (4, _) => HailoError::Timeout { status, call },
            (36 | 62 | 63 | 77 | 87 | 89 | 95 | 96, _) => HailoError::Disconnected { status, call },
            (7 | 79, _) => HailoError::Unsupported { status, call },
            (2 | 61, _) => HailoError::Contract { status, call },
            _ => HailoError::Other { status, call },
        }
    }

    /// The device is held by someone else: try again later (HTTP 503 with Retry-After).
    pub fn is_busy(&self) -> bool {
        matches!(self, HailoError::Busy { .. })
    }

    /// The open device is no longer usable and must be reopened.
    pub fn is_device_lost(&self) -> bool {
        matches!(
            self,
            HailoError::Disconnected { .. } | HailoError::Timeout { .. }
        )
    }

    /// The raw status, when HailoRT gave one.
    pub fn status(&self) -> Option<Status> {
        match self {
            HailoError::Busy { status, .. }
            | HailoError::NoDriver { status, .. }
            | HailoError::WrongChip { status, .. }
            | HailoError::HefMissing { status, .. }
            | HailoError::HefUnusable { status, .. }
            | HailoError::Timeout { status, .. }
            | HailoError::Disconnected { status, .. }
            | HailoError::Unsupported { status, .. }
            | HailoError::Contract { status, .. }
            | HailoError::Other { status, .. } => Some(*status),
            HailoError::Streams { .. }
            | HailoError::NoHailoRt { .. }
            | HailoError::HailoRtUnusable { .. }
            | HailoError::NoBridge { .. }
            | HailoError::BridgeForOtherHailoRt { .. }
            | HailoError::BridgeAbi { .. }
            | HailoError::Library { .. }
            | HailoError::NotOpen => None,
        }
    }
}

/// Directories as `a, b, c`.
fn list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no directory".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A device failure, as the engine reports it to callers that know no Hailo
/// types: busy (retry later) or failed (the next request reopens it).
impl From<HailoError> for EngineError {
    fn from(e: HailoError) -> Self {
        let kind = if e.is_busy() {
            FailureKind::Busy
        } else {
            FailureKind::Device
        };
        EngineError::Backend(BackendFailure::new(kind, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> Call {
        Call::LoadModel {
            hef: PathBuf::from("/m/florence2_transformer_decoder.hef"),
        }
    }

    fn run() -> Call {
        Call::Run {
            network: "decoder".into(),
            timeout: Duration::from_millis(1000),
        }
    }

    #[test]
    fn names_follow_the_header() {
        assert_eq!(Status(0).name(), Some("HAILO_SUCCESS"));
        assert_eq!(Status::TIMEOUT.name(), Some("HAILO_TIMEOUT"));
        assert_eq!(Status::NOT_FOUND.name(), Some("HAILO_NOT_FOUND"));
        assert_eq!(
            Status::OUT_OF_PHYSICAL_DEVICES.name(),
            Some("HAILO_OUT_OF_PHYSICAL_DEVICES")
        );
        assert_eq!(
            Status::HEF_NOT_COMPATIBLE_WITH_DEVICE.name(),
            Some("HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE")
        );
        assert_eq!(
            Status::DEVICE_TEMPORARILY_UNAVAILABLE.name(),
            Some("HAILO_DEVICE_TEMPORARILY_UNAVAILABLE")
        );
        assert_eq!(Status(98).name(), None);
        assert_eq!(Status(-1).to_string(), "unknown HailoRT status -1");
        assert_eq!(Status(74).to_string(), "HAILO_OUT_OF_PHYSICAL_DEVICES (74)");
    }

    #[test]
    fn statuses_map_to_what_the_caller_does() {
        let open = Call::OpenDevice {
            group_id: "SHARED".into(),
        };
        for s in [73, 74, 97] {
            let e = HailoError::from_status(Status(s), open.clone());
            assert!(e.is_busy() && !e.is_device_lost(), "{s}: {e}");
        }
        assert!(matches!(
            HailoError::from_status(Status(64), open.clone()),
            HailoError::NoDriver { .. }
        ));
        let e = HailoError::from_status(Status(93), load());
        assert!(matches!(e, HailoError::WrongChip { .. }));
        assert!(e.to_string().contains("hailo10h"), "{e}");
        assert!(matches!(
            HailoError::from_status(Status(13), load()),
            HailoError::HefMissing { .. }
        ));
        assert!(matches!(
            HailoError::from_status(Status(26), load()),
            HailoError::HefUnusable { .. }
        ));
        for s in [4, 96, 77] {
            let e = HailoError::from_status(Status(s), run());
            assert!(e.is_device_lost() && !e.is_busy(), "{s}: {e}");
        }
        for s in [2, 61] {
            assert!(matches!(
                HailoError::from_status(Status(s), run()),
                HailoError::Contract { .. }
            ));
        }
        let e = HailoError::from_status(Status(8), run());
        assert_eq!(e.status(), Some(Status::INTERNAL_FAILURE));
        assert!(
            e.to_string()
                .contains("HAILO_INTERNAL_FAILURE (8) while running decoder (timeout 1000 ms)"),
            "{e}"
        );
    }
}
