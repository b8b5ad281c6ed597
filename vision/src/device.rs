//! Which device a model runs on, and what this machine's libtorch can use.

use std::{fmt, str::FromStr};

use tch::{Cuda, Device};

/// `DEVICE`: `auto` (the first GPU when CUDA is available, else the CPU),
/// `cpu`, `cuda` (the first GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("{s:?}: expected auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("DEVICE={0} but CUDA is not available to libtorch here ({1}); use DEVICE=cpu or auto")]
    NoCuda(DeviceChoice, String),
    #[error("DEVICE=cuda:{0} but libtorch sees {1} GPU(s)")]
    NoSuchGpu(usize, usize),
}

impl DeviceChoice {
    /// The device to run on, checked against what libtorch can reach.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => Ok(if Cuda::is_available() {
                Device::Cuda(0)
            } else {
                Device::Cpu
            }),
            Self::Cuda(n) => {
                if !Cuda::is_available() {
                    return Err(DeviceError::NoCuda(self, TorchInfo::probe().why_no_cuda()));
                }
                let count = Cuda::device_count() as usize;
                if n >= count {
                    return Err(DeviceError::NoSuchGpu(n, count));
                }
                Ok(Device::Cuda(n))
            }
        }
    }
}

/// What the linked libtorch can do on this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TorchInfo {
    /// The libtorch version the binary was built against.
    pub libtorch: &'static str,
    /// Whether this libtorch has its CUDA backend loaded (linked and found).
    pub cuda_built: bool,
    pub cuda_available: bool,
    pub cudnn_available: bool,
    pub gpu_count: usize,
    /// The NVIDIA driver's names of this machine's GPUs.
    pub gpus: Vec<String>,
}

impl TorchInfo {
    pub fn probe() -> Self {
        let cuda_available = Cuda::is_available();
        Self {
            libtorch: crate::LIBTORCH_VERSION,
            cuda_built: cuda_backend_loaded(),
            cuda_available,
            cudnn_available: cuda_available && Cuda::cudnn_is_available(),
            gpu_count: if cuda_available {
                Cuda::device_count() as usize
            } else {
                0
            },
            gpus: gpu_names(),
        }
    }

    /// A line for logs and `doctor`.
    pub fn summary(&self) -> String {
        if self.cuda_available {
            let names = if self.gpus.is_empty() {
                "names unknown".to_owned()
            } else {
                self.gpus.join(", ")
            };
            format!(
                "libtorch {}, CUDA available: {} GPU(s) ({names}){}",
                self.libtorch,
                self.gpu_count,
                if self.cudnn_available { ", cuDNN" } else { "" }
            )
        } else {
            format!(
                "libtorch {}, CPU only: {}",
                self.libtorch,
                self.why_no_cuda()
            )
        }
    }

    fn why_no_cuda(&self) -> String {
        match (self.cuda_built, self.gpus.is_empty()) {
            (false, _) => "the CUDA backend (libtorch_cuda) is not loaded".to_owned(),
            (true, true) => "no NVIDIA GPU or driver on this machine".to_owned(),
            (true, false) => format!(
                "the driver lists {} but CUDA cannot use it (driver too old for this libtorch's CUDA?)",
                self.gpus.join(", ")
            ),
        }
    }
}

/// Whether libtorch's CUDA backend is in this process (the binary links
/// `libtorch_cuda`; see `vision/torch_link.rs`).
fn cuda_backend_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libtorch_cuda.so"))
}

/// GPU names as the NVIDIA driver lists them (no CUDA call needed).
fn gpu_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    let mut names: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path().join("information")).ok()?;
            let model = text
                .lines()
                .find_map(|line| line.strip_prefix("Model:"))?
                .trim()
                .to_owned();
            Some((entry.file_name().to_string_lossy().into_owned(), model))
        })
        .collect();
    // Bus ids sort in the order CUDA numbers the devices by default (PCI bus order).
    names.sort();
    names.into_iter().map(|(_, model)| model).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_choices() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn cpu_always_resolves_and_auto_follows_cuda() {
        assert_eq!(DeviceChoice::Cpu.resolve(), Ok(Device::Cpu));
        let auto = DeviceChoice::Auto.resolve().unwrap();
        assert_eq!(auto.is_cuda(), Cuda::is_available());
        if !Cuda::is_available() {
            assert!(matches!(
                DeviceChoice::Cuda(0).resolve(),
                Err(DeviceError::NoCuda(..))
            ));
        }
    }
}
