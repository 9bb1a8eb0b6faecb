//! Where a command's access key comes from: an environment variable or a file, never an argument (arguments
//! show up in `ps` and in shell history).

use anyhow::{anyhow, bail, Context};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Where the access key comes from: exactly one of the two.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// Read the access key from this environment variable.
    #[arg(long, value_name = "NAME")]
    key_env: Option<String>,
    /// Read the access key from this file (trailing newlines are ignored).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

impl KeyArgs {
    pub fn read(&self) -> anyhow::Result<Zeroizing<String>> {
        let key = match (&self.key_env, &self.key_file) {
            (Some(name), _) => Zeroizing::new(std::env::var(name).map_err(|_| {
                anyhow!(
                    "environment variable `{name}` is not set (or not UTF-8): expected the access key from the \
                     seller console's key management; export it or use --key-file"
                )
            })?),
            (None, Some(file)) => {
                let text = Zeroizing::new(std::fs::read_to_string(file).with_context(|| {
                    format!("cannot read the access key file {}", file.display())
                })?);
                // Secret files usually end with a newline that is not part of the key (as in the config).
                Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => bail!("pass the access key with --key-env NAME or --key-file FILE"),
        };
        if key.is_empty() {
            bail!("the access key is empty: expected the key from the seller console's key management");
        }
        Ok(key)
    }
}
