//! What the fuzz targets share: a seccomp filter that keeps fuzz input from running
//! anything or reaching the network.

/// Refuses (`EPERM`) `execve`, `execveat` and IPv4/IPv6 sockets to this process and every
/// thread and child it has or will have, and checks that it works: the API target serves
/// real requests, and no fuzz input may run a command (a layer's service, an exec, an exec
/// check) or reach a port (an http or tcp check). Unix sockets stay allowed (the API is
/// served on one). Panics if the filter cannot be installed: never fuzz unprotected.
pub fn forbid_exec_and_network() {
    // BPF_LD | BPF_W | BPF_ABS and BPF_JMP | BPF_JEQ | BPF_K (BPF_LD, BPF_W, BPF_K are 0).
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7;
    // Offsets in struct seccomp_data: nr, arch, then args (low half of args[0] on
    // little-endian machines).
    const NR: u32 = 0;
    const ARCH_OFF: u32 = 4;
    const ARG0: u32 = 16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k, jt, jf| libc::sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    };
    let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let filter = [
        stmt(BPF_LD_W_ABS, ARCH_OFF),
        jeq(ARCH, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, NR),
        jeq(libc::SYS_execve as u32, 0, 1),
        stmt(BPF_RET_K, deny),
        jeq(libc::SYS_execveat as u32, 0, 1),
        stmt(BPF_RET_K, deny),
        jeq(libc::SYS_socket as u32, 0, 5),
        stmt(BPF_LD_W_ABS, ARG0),
        jeq(libc::AF_INET as u32, 2, 0),
        jeq(libc::AF_INET6 as u32, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, deny),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl and seccomp with valid arguments; `prog` and `filter` outlive the call.
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            ),
            0,
            "cannot install the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
    let ran = std::process::Command::new("/bin/true").status();
    assert!(
        ran.is_err(),
        "the seccomp filter lets commands run: {ran:?}"
    );
    let tcp = std::net::TcpListener::bind("127.0.0.1:0");
    assert!(tcp.is_err(), "the seccomp filter lets TCP sockets open");
}
