//! `cairn-host`: the charm host daemon, a standalone Pebble and every client command (see
//! the library's overview); `cairn` hands it the host's commands.

fn main() {
    cairn::host_main()
}
