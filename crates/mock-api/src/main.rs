//! `nango-mock-api [--port N] [--api-key KEY]`: serves the mock API on 127.0.0.1 until killed.

use pg_nango_mock_api::{DEFAULT_API_KEY, MockServer};

fn main() {
    let mut port = 8787u16;
    let mut api_key = DEFAULT_API_KEY.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--api-key" => api_key = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let server = MockServer::start(port, &api_key).unwrap_or_else(|e| {
        eprintln!("nango-mock-api: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    println!("nango-mock-api listening on {}", server.url());
    loop {
        std::thread::park();
    }
}

fn usage() -> ! {
    eprintln!("usage: nango-mock-api [--port N] [--api-key KEY]");
    std::process::exit(2)
}
