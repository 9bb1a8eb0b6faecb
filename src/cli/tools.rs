//! `koogate sign`, `verify`, `encrypt`, `decrypt`: the protocol's primitives for scripts and debugging.

#[derive(clap::Args)]
pub struct SignArgs {}

#[derive(clap::Args)]
pub struct VerifyArgs {}

#[derive(clap::Args)]
pub struct FieldArgs {}

pub fn sign(_args: SignArgs) -> anyhow::Result<bool> {
    anyhow::bail!("not yet implemented")
}

pub fn verify(_args: VerifyArgs) -> anyhow::Result<bool> {
    anyhow::bail!("not yet implemented")
}

pub fn encrypt(_args: FieldArgs) -> anyhow::Result<bool> {
    anyhow::bail!("not yet implemented")
}

pub fn decrypt(_args: FieldArgs) -> anyhow::Result<bool> {
    anyhow::bail!("not yet implemented")
}
