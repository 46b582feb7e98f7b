# shellcheck shell=bash
# The helpers the bash test harnesses share (tests/linux-vm, tests/ipxe, tests/firmware-qemu).
# Source it (`. "$repo/tests/lib/harness.sh"`); it only defines functions and the h_* variables
# below, and changes no option, trap or directory of the caller. Needs bash 4.4 or later;
# works under `set -euo pipefail`. Every name it defines starts with `h_`.
#
# What each function guarantees:
#
# Processes (stops only what it started)
#   h_spawn VAR CMD...      starts CMD in the background as the leader of a new process group
#                           (setsid), stdin from /dev/null, and stores its PID (= the group id) in
#                           VAR. Redirect its output on the call: `h_spawn pid cmd >log 2>&1`.
#                           The group is remembered until it is reaped by h_stop, h_kill or h_wait.
#   h_stop PID [TENTHS]     SIGTERM to the group PID, SIGKILL after TENTHS tenths of a second
#                           (default 50), then reaps it and forgets it. Does nothing to a PID that
#                           h_spawn did not start or that was already reaped (so it never signals
#                           an id the system may have handed to another process).
#   h_kill PID              SIGKILL to the group at once (a power cut, a crash), reaps, forgets.
#                           Same rule as h_stop for PIDs it does not know.
#   h_wait PID              waits for the group leader to exit, forgets it, and returns its exit
#                           status.
#   h_alive PID             true while the process PID still runs.
#
# Network namespaces and TAP devices (deletes only what it created)
#   h_netns_add NS          creates namespace NS (failing if it exists) with `lo` up, and
#                           remembers that this run created it.
#   h_netns_del NS          deletes NS if h_netns_add created it; otherwise does nothing.
#   h_netns_sweep PREFIX... deletes namespaces named PREFIX<pid> left by an earlier run of a
#                           harness that was killed before its trap ran: only those whose <pid>
#                           no longer runs and which hold no process; says which on stderr.
#   h_tap_add NS TAP [MTU [BRIDGE]]
#                           creates TAP device TAP in NS (its own namespace or someone else's),
#                           with IPv6 off (no router solicitations or MLD on the test link), MTU
#                           if given, enslaved to BRIDGE if given, and up; remembers it. Returns
#                           non-zero (and leaves no half-made device behind) when a step fails.
#   h_tap_del NS TAP        deletes TAP from NS if h_tap_add created it; otherwise does nothing.
#
# Cleanup
#   h_cleanup               for the caller's EXIT trap: stops every group h_spawn started and
#                           has not reaped (SIGTERM to all, SIGKILL to any still there after 5 s),
#                           deletes the TAP devices h_tap_add made and the namespaces
#                           h_netns_add made. Never fails; safe to call twice.
#
# Waiting
#   h_poll TRIES STEP CMD...   runs CMD up to TRIES times, STEP seconds apart, until it
#                              succeeds; returns 0 as soon as it does, 1 if it never did.
#   h_wait_socket PATH PID TENTHS
#                              waits up to TENTHS tenths of a second for PATH to be a unix socket,
#                              giving up early when process PID exits; true iff PATH is a socket
#                              and PID still runs.
#
# The QEMU blade (tests/firmware-qemu/blade.sh)
#   h_blade_build           builds the blade firmware as tests/firmware-qemu/run.sh does and
#                           prints the ELF's path (cargo's output goes to stderr).
#   h_blade_start VAR NS DEFMT ELF CARD OWN_SOCK PEER_SOCK [TENTHS]
#                           h_spawn's `blade.sh run` in namespace NS (empty NS: the caller's
#                           namespace), its QEMU messages to the caller's stderr, the firmware's
#                           log to DEFMT; stores the PID (QEMU's: blade.sh execs it) in VAR; then
#                           h_wait_socket for OWN_SOCK (TENTHS, default 100). Returns 1 if the
#                           blade is not up; the caller then stops it.
#
# Images
#   h_busybox_tree ROOT     copies the static busybox to ROOT/bin and links every applet that
#                           ROOT/bin does not have yet. Fails, saying why on stderr, when there
#                           is no busybox or it is dynamically linked.
#   h_fetch_deb DIR PKG [APT-OPTION...]
#                           prints the path of PKG's .deb in DIR, downloading it there with
#                           `apt-get download` (and the given apt options) if DIR has none yet.
#                           PKG may carry a release, e.g. qemu-system-arm/bookworm-backports.
#
# Scripts
#   h_parse_options SPEC... -- ARG...
#                           the script's command line: each SPEC is --NAME=VAR (the option takes
#                           the next argument as its value, stored in VAR) or --NAME+VAR (a flag:
#                           VAR=1). Every ARG that is no such option goes, in order, to the array
#                           h_args, for the script to take as operands or refuse. Returns 2, with
#                           the option in h_bad_option, when a value is missing.
#   h_missing_tools TOOL... prints the TOOLs that are not on PATH (nothing when all are).
#   h_usage FILE            prints FILE's header comment (line 2 up to `set -euo pipefail`)
#                           without the `# `, for --help.

h_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
h_repo=$(cd "$h_lib_dir/../.." && pwd)
h_groups=()   # process groups h_spawn started and nobody reaped yet
h_netns=()    # namespaces h_netns_add created
h_taps=()     # "NS TAP" of every TAP h_tap_add created
h_args=()     # what h_parse_options left for the script
h_bad_option=""

# ---- processes ---------------------------------------------------------------------------------

h_spawn() {
    local var=$1
    shift
    # A script's background jobs share its process group, so setsid needs no fork here and $!
    # is the command itself (ip netns exec and blade.sh exec theirs, so it is that one too).
    setsid "$@" </dev/null &
    h_groups+=("$!")
    printf -v "$var" '%s' "$!"
}

h_known() { # true if PID is a group h_spawn started and nobody reaped
    local pg
    for pg in "${h_groups[@]}"; do [[ $pg == "$1" ]] && return 0; done
    return 1
}

h_forget() {
    local i
    for i in "${!h_groups[@]}"; do [[ ${h_groups[$i]} == "$1" ]] && unset 'h_groups[i]'; done
    return 0
}

h_stop() { h_end_group "$1" "${2:-50}"; }
h_kill() { h_end_group "$1" 0; }

# h_end_group PID TENTHS: with TENTHS > 0, SIGTERM and up to TENTHS tenths of a second to exit;
# then SIGKILL, reap, forget. Only for groups h_spawn started and nobody reaped.
h_end_group() {
    local pg=$1 tenths=$2 i
    [[ -n $pg ]] && h_known "$pg" || return 0
    if ((tenths > 0)) && kill -TERM -- "-$pg" 2>/dev/null; then
        for ((i = 0; i < tenths; i++)); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
    fi
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait "$pg" 2>/dev/null || true
    h_forget "$pg"
}

h_wait() {
    local rc=0
    wait "$1" || rc=$?
    h_forget "$1"
    return "$rc"
}

h_alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

# ---- namespaces and TAP devices ----------------------------------------------------------------

h_netns_add() {
    ip netns add "$1" || return 1
    h_netns+=("$1")
    ip -n "$1" link set lo up
}

h_netns_del() {
    local i
    for i in "${!h_netns[@]}"; do
        if [[ ${h_netns[$i]} == "$1" ]]; then
            ip netns del "$1" 2>/dev/null || true
            unset 'h_netns[i]'
        fi
    done
    return 0
}

h_netns_sweep() {
    local prefix ns pid
    for prefix in "$@"; do
        while read -r ns _; do
            [[ $ns =~ ^${prefix}([0-9]+)$ ]] || continue
            pid=${BASH_REMATCH[1]}
            [[ -d /proc/$pid ]] && continue
            [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] || continue
            ip netns del "$ns" 2>/dev/null &&
                echo "harness: removed namespace $ns, left by an earlier run (pid $pid) that was killed" >&2
        done < <(ip netns list 2>/dev/null)
    done
    return 0
}

h_tap_add() {
    local ns=$1 tap=$2 mtu=${3:-} bridge=${4:-}
    local up=(ip -n "$ns" link set "$tap")
    [[ -n $mtu ]] && up+=(mtu "$mtu")
    [[ -n $bridge ]] && up+=(master "$bridge")
    ip -n "$ns" tuntap add dev "$tap" mode tap || return 1
    h_taps+=("$ns $tap")
    # shellcheck disable=SC2016 # $1 is the inner shell's
    if ! ip netns exec "$ns" sh -c 'echo 1 >"/proc/sys/net/ipv6/conf/$1/disable_ipv6"' sh "$tap" ||
        ! "${up[@]}" up; then
        h_tap_del "$ns" "$tap"
        return 1
    fi
}

h_tap_del() {
    local i
    for i in "${!h_taps[@]}"; do
        if [[ ${h_taps[$i]} == "$1 $2" ]]; then
            ip -n "$1" link del "$2" 2>/dev/null || true
            unset 'h_taps[i]'
        fi
    done
    return 0
}

# ---- cleanup -----------------------------------------------------------------------------------

h_cleanup() {
    local pg entry ns
    # All at once first, so that they shut down in parallel; then each gets its 5 s.
    for pg in "${h_groups[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    for pg in "${h_groups[@]}"; do h_stop "$pg"; done
    for entry in "${h_taps[@]}"; do h_tap_del "${entry%% *}" "${entry#* }"; done
    for ns in "${h_netns[@]}"; do h_netns_del "$ns"; done
    return 0
}

# ---- waiting -----------------------------------------------------------------------------------

h_poll() {
    local tries=$1 step=$2 i
    shift 2
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep "$step"
    done
    return 1
}

h_wait_socket() {
    local path=$1 pid=$2 tenths=$3 i
    for ((i = 0; i < tenths; i++)); do
        [[ -S $path ]] && break
        h_alive "$pid" || break
        sleep 0.1
    done
    [[ -S $path ]] && h_alive "$pid"
}

# ---- the QEMU blade ----------------------------------------------------------------------------

h_blade_build() { bash "$h_repo/tests/firmware-qemu/blade.sh" build; }

h_blade_start() {
    local var=$1 ns=$2 defmt=$3 elf=$4 card=$5 own=$6 peer=$7 tenths=${8:-100}
    local run=(bash "$h_repo/tests/firmware-qemu/blade.sh" run --defmt "$defmt" "$elf" "$card" "$own" "$peer")
    [[ -z $ns ]] || run=(ip netns exec "$ns" "${run[@]}")
    h_spawn "$var" "${run[@]}"
    h_wait_socket "$own" "${!var}" "$tenths"
}

# ---- images ------------------------------------------------------------------------------------

h_busybox_tree() {
    local root=$1 busybox applet
    busybox=$(command -v busybox) || { echo "no busybox (apt-get install busybox-static)" >&2; return 1; }
    if ldd "$busybox" >/dev/null 2>&1; then # it would need its libraries in ROOT as well
        echo "busybox is dynamically linked; install busybox-static" >&2
        return 1
    fi
    mkdir -p "$root/bin"
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do
        [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
    done
}

h_fetch_deb() {
    local dir=$1 pkg=$2 debs
    shift 2
    debs=("$dir/${pkg%%/*}"_*.deb)
    if [[ ! -f ${debs[0]} ]]; then
        echo "downloading $pkg into $dir" >&2
        # apt-get download writes into the current directory (as root it warns that _apt cannot
        # write there; harmless).
        (cd "$dir" && apt-get "$@" download "$pkg" >&2) || return 1
        debs=("$dir/${pkg%%/*}"_*.deb)
    fi
    [[ -f ${debs[0]} ]] && echo "${debs[0]}"
}

# ---- scripts -----------------------------------------------------------------------------------

h_parse_options() {
    local specs=() spec arg known
    while [[ $1 != -- ]]; do specs+=("$1"); shift; done
    shift
    h_args=() h_bad_option=""
    while (($#)); do
        arg=$1 known=0
        for spec in "${specs[@]}"; do
            case $spec in
            "$arg="*)
                # shellcheck disable=SC2034 # the caller names the option in its message
                (($# >= 2)) || { h_bad_option=$arg; return 2; }
                printf -v "${spec#*=}" '%s' "$2"
                shift
                known=1
                break
                ;;
            "$arg+"*) printf -v "${spec#*+}" '%s' 1; known=1; break ;;
            esac
        done
        ((known)) || h_args+=("$arg")
        shift
    done
}

h_missing_tools() {
    local tool
    for tool in "$@"; do command -v "$tool" >/dev/null || printf '%s\n' "$tool"; done
}

h_usage() { sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'; }
