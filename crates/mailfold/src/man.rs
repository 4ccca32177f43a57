//! The man page, mailfold(1).

/// The page as roff.
pub fn render() -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<crate::cli::Cli as clap::CommandFactory>::command()).render(&mut out)?;
    Ok(out)
}
