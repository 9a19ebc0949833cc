# bench-common.bash — pieces scripts/bench-launch and scripts/bench-lifecycle
# share; sourced, not run.
#
# bench_config ROOTFS CGROUP_PATH ARG...
#     prints the benchmarks' OCI config.json: rootfs ROOTFS read-only; the
#     process ARG... as nobody (65534:65534, the only id mapped in a new user
#     namespace); new pid, net, ipc, uts, mount and cgroup namespaces; every
#     capability set empty; noNewPrivileges; RLIMIT_NOFILE 1024; a seccomp
#     allow-list (every x86_64 syscall in the kernel headers minus a deny list,
#     roughly Docker's default; default EPERM); memory 64 MiB and pids 128 in
#     cgroup CGROUP_PATH; /proc, tmpfs /dev, devpts, /dev/shm; the usual masked
#     and read-only /proc paths. Needs jq and linux-libc-dev's unistd_64.h.
#
# bench_crun_namespace
#     crun on a hybrid host: crun 1.8 reads /sys/fs/cgroup/unified and refuses
#     to start any container — whatever --cgroup-manager says, "disabled"
#     included — when that cgroup2 mount offers a controller ("cgroups in
#     hybrid mode not supported, drop all controllers from cgroupv2"); here it
#     offers hugetlb. This starts one holder process (sleep) in a private mount
#     namespace in which /sys/fs/cgroup/unified is unmounted (the host's mounts
#     are untouched) and sets `holder` (its pid; the caller kills it on exit,
#     which ends the namespace) and `nsmnt` (/proc/HOLDER/ns/mnt, for
#     `nsenter --mount=$nsmnt crun ...`). crun then sees a pure v1 host and its
#     cgroupfs manager makes the container's cgroup in the v1 hierarchies.
#     Calls `die` (the caller's) when the mount cannot be hidden.

bench_config() {
    local root=$1 cg=$2
    shift 2
    local syscalls_h=/usr/include/x86_64-linux-gnu/asm/unistd_64.h
    [[ $(uname -m) == x86_64 && -r $syscalls_h ]] ||
        die "needs x86_64 and $syscalls_h (linux-libc-dev) for the seccomp allow-list"
    # Denied: module/kexec/reboot/swap/clock/accounting, new mounts and
    # namespaces, ptrace and cross-process memory access, bpf/perf, keyrings,
    # raw I/O ports, handle-based opens, userfaultfd — roughly Docker's default.
    local deny='^(acct|add_key|bpf|clock_adjtime|clock_settime|create_module|delete_module|finit_module|fsconfig|fsmount|fsopen|fspick|get_kernel_syms|get_mempolicy|init_module|ioperm|iopl|kcmp|kexec_file_load|kexec_load|keyctl|lookup_dcookie|mbind|mount|mount_setattr|move_mount|move_pages|name_to_handle_at|nfsservctl|open_by_handle_at|open_tree|perf_event_open|personality|pivot_root|process_vm_readv|process_vm_writev|ptrace|query_module|quotactl|quotactl_fd|reboot|request_key|set_mempolicy|setns|settimeofday|swapoff|swapon|_sysctl|sysfs|umount2|unshare|uselib|userfaultfd|ustat|vm86|vm86old)$'
    local allow_json args_json
    allow_json=$(grep -E '^#define __NR_[a-z0-9_]+ [0-9]+' "$syscalls_h" | awk '{sub("__NR_","",$2); print $2}' |
        grep -Ev "$deny" | LC_ALL=C sort | jq -R . | jq -sc .)
    args_json=$(printf '%s\n' "$@" | jq -R . | jq -sc .)
    jq -n --arg root "$root" --arg cg "$cg" --argjson allow "$allow_json" --argjson args "$args_json" '{
  ociVersion: "1.0.2",
  process: {
    terminal: false,
    user: {uid: 65534, gid: 65534},
    args: $args,
    env: ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],
    cwd: "/",
    capabilities: {bounding: [], effective: [], inheritable: [], permitted: [], ambient: []},
    rlimits: [{type: "RLIMIT_NOFILE", hard: 1024, soft: 1024}],
    noNewPrivileges: true
  },
  root: {path: $root, readonly: true},
  hostname: "sandbox",
  mounts: [
    {destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]},
    {destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
  ],
  linux: {
    uidMappings: [{containerID: 65534, hostID: 65534, size: 1}],
    gidMappings: [{containerID: 65534, hostID: 65534, size: 1}],
    namespaces: [{type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"}, {type: "mount"}, {type: "user"}, {type: "cgroup"}],
    cgroupsPath: $cg,
    resources: {
      memory: {limit: 67108864},
      pids: {limit: 128},
      devices: [{allow: false, access: "rwm"}]
    },
    seccomp: {
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 1,
      architectures: ["SCMP_ARCH_X86_64"],
      syscalls: [{names: $allow, action: "SCMP_ACT_ALLOW"}]
    },
    maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
    readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}'
}

bench_crun_namespace() {
    # Private propagation, so the umount stays inside.
    unshare --mount --propagation private /bin/sh -c \
        'umount -l /sys/fs/cgroup/unified 2>/dev/null || true; exec sleep 86400' </dev/null &
    holder=$!
    nsmnt="/proc/$holder/ns/mnt"
    local _
    for _ in $(seq 100); do
        if [[ $(readlink "$nsmnt" 2>/dev/null) != "$(readlink /proc/self/ns/mnt)" ]] &&
            nsenter --mount="$nsmnt" /bin/sh -c '! test -e /sys/fs/cgroup/unified/cgroup.controllers'; then
            return 0
        fi
        sleep 0.05
    done
    die "could not hide /sys/fs/cgroup/unified in crun's mount namespace"
}
