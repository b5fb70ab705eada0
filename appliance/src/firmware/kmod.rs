//! Kernel modules: reading a module's `.modinfo` section, ordering modules by their `depends=`
//! fields, loading them with `finit_module(2)`, and, when the image is built, copying a set of
//! modules together with everything they depend on.
//!
//! Debian's kernel packages ship plain `.ko` files and no `modules.dep`, so the order is
//! computed from each module's own metadata: the `.modinfo` ELF section holds NUL-separated
//! `key=value` strings, among them `name=` and `depends=` (comma-separated module names).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use object::{Object, ObjectSection};

/// What the image needs to know about one module file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Module name as the kernel knows it (`virtio_scsi`).
    pub name: String,
    /// The `.ko` file.
    pub path: PathBuf,
    /// Names of the modules it needs loaded first.
    pub depends: Vec<String>,
    /// Firmware files it may ask for (`firmware=` fields: paths under `/lib/firmware`).
    pub firmware: Vec<String>,
}

/// Errors reading or ordering modules; each names the module or file.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The file could not be read.
    #[error("reading module {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a kernel module this image can load.
    #[error("module {path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A module depends on one that is not there.
    #[error("module {module} depends on {missing}, which is not in {dir}")]
    MissingDependency {
        /// The module.
        module: String,
        /// Its missing dependency.
        missing: String,
        /// Where modules were looked for.
        dir: PathBuf,
    },
    /// A requested module is not there.
    #[error("module {name} is not in {dir}")]
    NotFound {
        /// The module.
        name: String,
        /// Where modules were looked for.
        dir: PathBuf,
    },
    /// Dependencies form a cycle.
    #[error("modules {0:?} depend on each other in a cycle")]
    Cycle(Vec<String>),
}

/// Reads the `.modinfo` section of a `.ko` file.
///
/// Errors: [`ModuleError::Io`]; [`ModuleError::Invalid`] for a compressed module, a file that is
/// not ELF, or one without `.modinfo`.
pub fn read_modinfo(path: &Path) -> Result<ModuleInfo, ModuleError> {
    let invalid = |detail: String| ModuleError::Invalid {
        path: path.to_path_buf(),
        detail,
    };
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some(stem) = file_name.strip_suffix(".ko") else {
        return Err(invalid(
            "only uncompressed .ko files are supported (decompress .ko.xz/.ko.zst when building the image)"
                .into(),
        ));
    };
    let bytes = std::fs::read(path).map_err(|source| ModuleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let elf = object::File::parse(&*bytes).map_err(|e| invalid(format!("not an ELF file: {e}")))?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or_else(|| invalid("has no .modinfo section".into()))?;
    let data = section
        .data()
        .map_err(|e| invalid(format!("unreadable .modinfo: {e}")))?;
    let mut name = None;
    let mut depends = Vec::new();
    let mut firmware = Vec::new();
    for field in data.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let field = String::from_utf8_lossy(field);
        // The kernel treats '-' and '_' in module names alike (`nvme` depends on `nvme-core`,
        // whose name is `nvme_core`): names are kept with '_'.
        if let Some(v) = field.strip_prefix("name=") {
            name = Some(v.replace('-', "_"));
        } else if let Some(v) = field.strip_prefix("depends=") {
            depends.extend(
                v.split(',')
                    .filter(|d| !d.is_empty())
                    .map(|d| d.replace('-', "_")),
            );
        } else if let Some(v) = field.strip_prefix("firmware=") {
            firmware.push(v.to_string());
        }
    }
    Ok(ModuleInfo {
        // Older modules carry no name= field; the kernel then uses the file name with '-' as '_'.
        name: name.unwrap_or_else(|| stem.replace('-', "_")),
        path: path.to_path_buf(),
        depends,
        firmware,
    })
}

/// Every `.ko` under `dir` (recursively), by module name.
///
/// Errors: as [`read_modinfo`], for the first bad file.
pub fn scan(dir: &Path) -> Result<BTreeMap<String, ModuleInfo>, ModuleError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| ModuleError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "ko") {
                let info = read_modinfo(&path)?;
                out.insert(info.name.clone(), info);
            }
        }
    }
    Ok(out)
}

/// Orders `modules` so that each comes after everything it depends on (ties by name, so the
/// order is stable).
///
/// Errors: [`ModuleError::MissingDependency`] naming the module; [`ModuleError::Cycle`].
pub fn load_order(
    modules: &BTreeMap<String, ModuleInfo>,
    dir: &Path,
) -> Result<Vec<ModuleInfo>, ModuleError> {
    for m in modules.values() {
        if let Some(missing) = m.depends.iter().find(|d| !modules.contains_key(*d)) {
            return Err(ModuleError::MissingDependency {
                module: m.name.clone(),
                missing: missing.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
    let mut done = BTreeSet::new();
    let mut order = Vec::with_capacity(modules.len());
    while order.len() < modules.len() {
        let ready: Vec<&ModuleInfo> = modules
            .values()
            .filter(|m| !done.contains(&m.name) && m.depends.iter().all(|d| done.contains(d)))
            .collect();
        if ready.is_empty() {
            return Err(ModuleError::Cycle(
                modules
                    .keys()
                    .filter(|n| !done.contains(*n))
                    .cloned()
                    .collect(),
            ));
        }
        for m in ready {
            done.insert(m.name.clone());
            order.push(m.clone());
        }
    }
    Ok(order)
}

/// Copies the modules named in `wanted`, and everything they depend on, from a kernel's module
/// tree (`lib/modules/<version>`) into `out_dir` as flat `<name>.ko` files. Returns the modules
/// copied, in load order (with the firmware files each declares).
///
/// Errors: [`ModuleError::NotFound`] for a wanted module the kernel does not have (it may be
/// built in: check the kernel config); the others as [`scan`] and [`load_order`].
pub fn pack(
    tree: &Path,
    wanted: &[String],
    out_dir: &Path,
) -> Result<Vec<ModuleInfo>, ModuleError> {
    let all = scan(tree)?;
    let mut chosen = BTreeMap::new();
    let mut todo: Vec<String> = wanted.to_vec();
    while let Some(name) = todo.pop() {
        if chosen.contains_key(&name) {
            continue;
        }
        let m = all.get(&name).ok_or_else(|| ModuleError::NotFound {
            name: name.clone(),
            dir: tree.to_path_buf(),
        })?;
        todo.extend(m.depends.iter().cloned());
        chosen.insert(name, m.clone());
    }
    let order = load_order(&chosen, tree)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModuleError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    for m in &order {
        let target = out_dir.join(format!("{}.ko", m.name));
        std::fs::copy(&m.path, &target).map_err(io(&target))?;
    }
    Ok(order)
}

/// Loads every module in `dir` in dependency order with `finit_module(2)`. A module that is
/// already loaded (or built in) counts as loaded. Returns how many were loaded and the failures
/// (module name and error); a failure does not stop the others.
///
/// Errors: reading or ordering the modules (see [`scan`] and [`load_order`]).
pub fn load_all(dir: &Path) -> Result<(usize, Vec<(String, String)>), ModuleError> {
    let start = Instant::now();
    let modules = scan(dir)?;
    let order = load_order(&modules, dir)?;
    let mut failures = Vec::new();
    let mut loaded = 0;
    for m in &order {
        let result = std::fs::File::open(&m.path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
                    Err(e) => Err(e.desc().to_string()),
                }
            });
        match result {
            Ok(()) => loaded += 1,
            Err(e) => {
                failures.push((m.name.clone(), e));
            }
        }
    }
    tracing::debug!(
        loaded,
        elapsed_ms = start.elapsed().as_millis() as u64,
        "modules loaded"
    );
    Ok((loaded, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, depends: &[&str]) -> (String, ModuleInfo) {
        (
            name.to_string(),
            ModuleInfo {
                name: name.into(),
                path: PathBuf::from(format!("{name}.ko")),
                depends: depends.iter().map(|d| d.to_string()).collect(),
                firmware: Vec::new(),
            },
        )
    }

    #[test]
    fn dependencies_load_first() {
        let modules = BTreeMap::from([
            info("virtio_scsi", &["scsi_mod", "virtio", "virtio_ring"]),
            info("scsi_mod", &["scsi_common"]),
            info("scsi_common", &[]),
            info("virtio", &[]),
            info("virtio_ring", &[]),
            info("sd_mod", &["scsi_mod", "scsi_common"]),
        ]);
        let order: Vec<String> = load_order(&modules, Path::new("m"))
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        let pos = |n: &str| order.iter().position(|m| m == n).unwrap();
        assert!(pos("scsi_common") < pos("scsi_mod"));
        assert!(pos("scsi_mod") < pos("virtio_scsi"));
        assert!(pos("scsi_mod") < pos("sd_mod"));
        assert!(pos("virtio_ring") < pos("virtio_scsi"));
        assert_eq!(order.len(), 6);
    }

    #[test]
    fn a_missing_dependency_or_a_cycle_is_named() {
        let missing = BTreeMap::from([info("sd_mod", &["scsi_mod"])]);
        let err = load_order(&missing, Path::new("/lib/modules"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "module sd_mod depends on scsi_mod, which is not in /lib/modules"
        );
        let cycle = BTreeMap::from([info("a", &["b"]), info("b", &["a"])]);
        assert!(matches!(
            load_order(&cycle, Path::new("m")),
            Err(ModuleError::Cycle(v)) if v == ["a", "b"]
        ));
    }

    /// A module file as the kernel build writes one: an ELF object with a `.modinfo` section.
    fn write_module(path: &Path, modinfo: &[u8]) {
        use object::write::Object;
        let mut elf = Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let section = elf.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        elf.append_section_data(section, modinfo, 1);
        std::fs::write(path, elf.write().unwrap()).unwrap();
    }

    #[test]
    fn modinfo_names_dependencies_and_firmware_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nvme.ko");
        // As Debian's generic kernel has it: `depends=` spells nvme_core with a dash.
        write_module(
            &path,
            b"license=GPL\0depends=nvme-core,t10-pi\0name=nvme\0firmware=vendor/fw.bin\0",
        );
        let m = read_modinfo(&path).unwrap();
        assert_eq!(m.name, "nvme");
        assert_eq!(m.depends, ["nvme_core", "t10_pi"]);
        assert_eq!(m.firmware, ["vendor/fw.bin"]);
        // Without name=, the file name stands for it, with '_' for '-'.
        let old = dir.path().join("scsi-old.ko");
        write_module(&old, b"depends=\0");
        let m = read_modinfo(&old).unwrap();
        assert_eq!((m.name.as_str(), m.depends.len()), ("scsi_old", 0));
    }

    #[test]
    fn garbage_is_not_a_module() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.ko");
        std::fs::write(&path, b"not an elf file").unwrap();
        let err = read_modinfo(&path).unwrap_err().to_string();
        assert!(
            err.contains("fake.ko") && err.contains("not an ELF"),
            "{err}"
        );
        let xz = dir.path().join("fake.ko.xz");
        std::fs::write(&xz, b"x").unwrap();
        assert!(read_modinfo(&xz)
            .unwrap_err()
            .to_string()
            .contains("uncompressed"));
    }
}
