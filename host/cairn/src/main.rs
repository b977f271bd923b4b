//! `cairn`: the command line (see the library's overview). Client commands run here;
//! the host's commands are handed to `cairn-host`.

fn main() {
    cairn::client_main()
}
