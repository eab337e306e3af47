//! `zring keygen`.

#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Write the cluster's key file here (mode 0600; must not exist yet).
    #[arg(long, value_name = "FILE")]
    pub(crate) keyfile: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: KeygenArgs) -> anyhow::Result<std::process::ExitCode> {
    use zring::codec::{KeyPair, OsRandom};

    let server = KeyPair::generate(&mut OsRandom)?;
    let Some(path) = args.keyfile else {
        // curve_keygen's two sections, without its preamble.
        let secret = zeroize::Zeroizing::new(server.secret.to_z85());
        println!("== CURVE PUBLIC KEY ==");
        println!("{}", server.public.to_z85());
        println!();
        println!("== CURVE SECRET KEY ==");
        println!("{}", secret.as_str());
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let client = KeyPair::generate(&mut OsRandom)?;
    zring::keys::write_keyfile(&path, &server, &client).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} exists: zring keygen never replaces a key file; remove it or choose another",
                path.display()
            )
        } else {
            anyhow::anyhow!("{}: cannot write the key file: {e}", path.display())
        }
    })?;
    println!(
        "wrote {} (mode 0600): a new server key pair and client key pair",
        path.display()
    );
    println!("curve_server_publickey = \"{}\"", server.public.to_z85());
    println!("curve_client_publickey = \"{}\"", client.public.to_z85());
    Ok(std::process::ExitCode::SUCCESS)
}
