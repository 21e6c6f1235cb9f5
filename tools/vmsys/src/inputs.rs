//! Reading the two input files: the VM description and the system.xml it
//! names (or one given on the command line).

use std::path::{Path, PathBuf};

use crate::description::Description;
use crate::diag::Diag;
use crate::sdf::Sdf;

/// Both inputs, parsed.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The VM description.
    pub desc: Description,
    /// The system description.
    pub sdf: Sdf,
}

/// Reads a file, as a message if it cannot be read.
pub fn read(path: &Path) -> Result<String, Vec<Diag>> {
    std::fs::read_to_string(path)
        .map_err(|e| vec![Diag::file(&path.display().to_string(), format!("cannot read: {e}"))])
}

/// Reads the description at `desc_path`, then `xml` if given, else the
/// system.xml the description names (relative to the description's folder).
pub fn load(desc_path: &Path, xml: Option<&Path>) -> Result<Inputs, Vec<Diag>> {
    let desc_name = desc_path.display().to_string();
    let desc = Description::parse(&desc_name, &read(desc_path)?)?;
    let xml_path: PathBuf = match (xml, &desc.system_xml) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(rel)) => desc_path.parent().unwrap_or(Path::new("")).join(rel),
        (None, None) => {
            return Err(vec![Diag::file(
                &desc_name,
                "names no system.xml: set `system_xml` in it or give one with --xml",
            )])
        }
    };
    let sdf = Sdf::parse(&xml_path.display().to_string(), &read(&xml_path)?)?;
    Ok(Inputs { desc, sdf })
}
