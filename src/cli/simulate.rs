//! `koogate simulate`: see [`crate::simulate`].

#[derive(clap::Args)]
pub struct SimulateArgs {}

pub async fn run(_args: SimulateArgs) -> anyhow::Result<bool> {
    anyhow::bail!("not yet implemented")
}
