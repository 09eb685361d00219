#!/usr/bin/env bash
# netns_hosts.sh: N pretend hosts on this machine for multi-node tests and benchmarks (issue 16).
#
# Each host is a Linux network namespace ID-hK with one interface eth0 (a veth pair) at
# 10.213.S.(K+1)/24, and its own host name ID-hK (a UTS namespace made for every command entered
# into it). The other ends of the veths sit on a bridge br0 in a launcher namespace ID-ctl, which
# holds 10.213.S.254 and is where mpirun (or ruche-run) runs. Nothing is added to the root
# namespace: no address, no interface. S is derived from ID (or --subnet S), so tests that run side
# by side have their own /24 (and, their bridges being in their own namespaces, could not meet
# anyway). Between hosts there is only TCP over the veths; shared memory stays within a host
# (Open MPI tells nodes apart by the daemon that started the ranks, one per host).
#
# usage: netns_hosts.sh COMMAND ...
#   up ID N [--rate R] [--subnet S]  make hosts ID-h0 .. ID-h(N-1) (removing any left by an earlier
#                                    run of ID first); --rate limits every host's link both ways
#                                    with tbf (tc rate syntax: 100mbit, 1gbit); prints nothing
#   down ID                          remove everything `up ID` made (processes still inside the
#                                    namespaces are killed); safe to run when nothing is there
#   with ID N [--rate R] -- CMD...    up, run CMD (here, with NETNS_HOSTS_ID=ID and
#                                    NETNS_HOSTS_HOSTFILE, a hostfile of 1 slot a host), then down
#                                    whatever way CMD ends (also on SIGINT/SIGTERM); CMD's code
#   exec ID K CMD...                 run CMD inside host K (its network and host name)
#   run ID CMD...                    run CMD in the launcher namespace, with
#                                    OMPI_MCA_plm_rsh_agent set to this script's agent (unless set)
#   hostfile ID SLOTS                print an Open MPI hostfile: "ID-hK slots=SLOTS" per host
#   link ID K up|down                bring host K's link up or down (its veth's end on the
#                                    bridge: a pulled cable; the host keeps its address)
#   rate ID K R|none                 set or remove host K's tbf rate limit (both directions)
#   addr ID K                        print host K's address
#   hosts ID                         print the host names, one a line
#   agent HOST CMD...                the launch agent, in ssh's place (Open MPI's plm_rsh_agent:
#                                    "netns_hosts.sh agent"): connects to HOST over the network
#                                    first (TCP connects from the caller's namespace, 3 s), so
#                                    a host whose link is down does not answer (exit 255, as
#                                    ssh), then runs CMD with a shell inside HOST, as sshd would
#
# What exists while hosts are up: the namespaces ID-ctl and ID-h* (/run/netns) and their host
# tables /etc/netns/ID-*/hosts (which `ip netns exec` shows them as /etc/hosts); `down` removes
# them all.
#
# Typical use (as root; `ip` with netns support, `tc` for rates):
#   netns_hosts.sh up t1 2 --rate 1gbit
#   trap 'netns_hosts.sh down t1' EXIT
#   netns_hosts.sh hostfile t1 2 >hosts
#   netns_hosts.sh run t1 mpirun --allow-run-as-root --hostfile hosts -np 4 \
#       --mca pml ob1 --mca btl tcp,vader,self ruche train ...
#   netns_hosts.sh run t1 launcher/ruche-run --hostfile hosts -np 4 -- ruche train ...
#
# Exit codes: 0 done, 2 usage or a failed step, 77 cannot run here (not root, no `ip`, namespaces
# or bridges refused), 255 agent: no answer;
# exec/run/agent return their command's code.
set -u

SELF=$(realpath "$0")

die() { echo "netns_hosts: $*" >&2; exit 2; }

valid_id() {
  [[ ${1:-} =~ ^[a-z][a-z0-9]{0,9}$ ]] ||
    die "ID '${1:-}' must be 1-10 of a-z0-9, starting with a letter"
}
need_root() {
  [[ $(id -u) == 0 ]] || { echo "netns_hosts: needs root (network namespaces)" >&2; exit 77; }
  command -v ip >/dev/null || { echo "netns_hosts: 'ip' (iproute2) is not installed" >&2; exit 77; }
}
subnet_of() {  # the third octet for ID: 1..250, from a checksum of the ID
  local sum
  sum=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
  echo $((sum % 250 + 1))
}
ctl() { echo "$1-ctl"; }
host_ns() { echo "$1-h$2"; }
# Host namespaces of ID, in order.
hosts_of() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1-h[0-9]+$" | sort -t h -k2 -n
}

down() {
  local id=$1 ns pid i
  for ns in $(hosts_of "$id") "$(ctl "$id")"; do
    [[ -e /run/netns/$ns ]] || continue
    # Processes left inside (a killed job's daemons and ranks): ended by pid, a bounded wait.
    for i in 1 2 3 4 5 6 7 8 9 10; do
      pids=$(ip netns pids "$ns" 2>/dev/null)
      [[ -z $pids ]] && break
      for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
      sleep 0.2
    done
    ip netns del "$ns" 2>/dev/null
  done
  for ns in /etc/netns/"$id"-ctl /etc/netns/"$id"-h*; do
    [[ -d $ns ]] && rm -rf -- "$ns"
  done
  return 0
}

rate_bits() {  # tc rate text (100mbit, 1gbit, 2.5gbit, 500kbit, 64000bit) -> bits/s; 0 if other
  local r=${1,,} n unit
  [[ $r =~ ^([0-9]+)(\.([0-9]+))?(k|m|g)?bit$ ]] || { echo 0; return; }
  n=${BASH_REMATCH[1]}${BASH_REMATCH[3]:-}
  unit=${BASH_REMATCH[4]:-}
  local scale=1
  case $unit in k) scale=1000 ;; m) scale=1000000 ;; g) scale=1000000000 ;; esac
  echo $((n * scale / 10 ** ${#BASH_REMATCH[3]}))
}

set_rate() {  # ID K RATE|none
  local id=$1 k=$2 rate=$3 h
  h=$(host_ns "$id" "$k")
  if [[ $rate == none ]]; then
    tc -n "$(ctl "$id")" qdisc del dev "v$k" root 2>/dev/null
    tc -n "$h" qdisc del dev eth0 root 2>/dev/null
    return 0
  fi
  # tbf: the bucket holds 64 KiB (a TSO segment) or 1 ms of the rate, the larger; packets wait up
  # to 50 ms. A fixed 64 KiB held 2 Gbit/s links to 0.6 Gbit/s (1 MiB: 1 Gbit/s) on 2 cores.
  local burst=65536 bits
  bits=$(rate_bits "$rate")
  ((bits / 8000 > burst)) && burst=$((bits / 8000))
  tc -n "$(ctl "$id")" qdisc replace dev "v$k" root tbf rate "$rate" burst "$burst" latency 50ms &&
    tc -n "$h" qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms ||
    die "tc could not set rate '$rate' on host $k"
}

up() {
  local id=$1 n=$2 rate="" sub=""
  shift 2
  while [[ $# -gt 0 ]]; do
    case $1 in
      --rate) rate=${2:?--rate needs a value}; shift 2 ;;
      --subnet) sub=${2:?--subnet needs a value}; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 250)) || die "up: N must be 1 to 250, not '$n'"
  [[ -z $sub ]] && sub=$(subnet_of "$id")
  [[ $sub =~ ^[0-9]+$ ]] && ((sub >= 0 && sub <= 255)) || die "up: --subnet must be 0 to 255"
  down "$id"
  local c net k h
  c=$(ctl "$id")
  net=10.213.$sub
  {
    ip netns add "$c" &&
      ip -n "$c" link set lo up &&
      ip -n "$c" link add br0 type bridge &&
      ip -n "$c" addr add "$net.254/24" dev br0 &&
      ip -n "$c" link set br0 up
  } || {
    down "$id"
    echo "netns_hosts: cannot make network namespaces and bridges here (ip netns add $c failed)" >&2
    exit 77
  }
  mkdir -p "/etc/netns/$c"
  {
    echo "127.0.0.1 localhost"
    echo "$net.254 $c"
    for ((k = 0; k < n; k++)); do echo "$net.$((k + 1)) $(host_ns "$id" "$k")"; done
  } >"/etc/netns/$c/hosts"
  for ((k = 0; k < n; k++)); do
    h=$(host_ns "$id" "$k")
    {
      ip netns add "$h" &&
        ip -n "$h" link set lo up &&
        ip -n "$c" link add "v$k" type veth peer name eth0 netns "$h" &&
        ip -n "$c" link set "v$k" master br0 &&
        ip -n "$c" link set "v$k" up &&
        ip -n "$h" addr add "$net.$((k + 1))/24" dev eth0 &&
        ip -n "$h" link set eth0 up
    } || { down "$id"; die "up: could not make host $h"; }
    mkdir -p "/etc/netns/$h"
    cp "/etc/netns/$c/hosts" "/etc/netns/$h/hosts"
    [[ -n $rate ]] && set_rate "$id" "$k" "$rate"
  done
  return 0
}

# The launch agent: HOST CMD... Resolve HOST to its namespace, connect to it over the network from
# here (so a cut link is a host that does not answer), then run CMD in it with a shell.
agent() {
  local host=${1:-}
  shift
  [[ -n $host && $host =~ ^[a-z][a-z0-9]*-h[0-9]+$ && -e /run/netns/$host ]] || {
    echo "netns_hosts agent: Could not resolve hostname ${host:-(none)}" >&2
    exit 255
  }
  local addr
  addr=$(ip -n "$host" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
  # Port 9 (discard) has no listener: "connection refused" is an answer; a timeout or no route
  # is not. Three tries of a second each (a link just brought up may lose the first ARP or SYN).
  local err try
  for try in 1 2 3; do
    err=$(LC_ALL=C timeout 1 bash -c "exec 3<>/dev/tcp/${addr:-0.0.0.0}/9" 2>&1)
    [[ $err == *"Connection refused"* ]] && break
  done
  if [[ $err != *"Connection refused"* ]]; then
    echo "netns_hosts agent: connect to host $host (${addr:-no address}): no answer" >&2
    exit 255
  fi
  exec ip netns exec "$host" unshare --uts -- /bin/sh -c 'hostname "$0" && exec /bin/sh -c "$1"' \
    "$host" "$*"
}

cmd=${1:-}
[[ -n $cmd ]] ||
  die "usage: netns_hosts.sh up|down|exec|run|hostfile|link|rate|addr|hosts|agent ... (--help)"
shift
case $cmd in
  -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  agent) agent "$@" ;;
esac
need_root
id=${1:-}
valid_id "$id"
shift
case $cmd in
  up) [[ $# -ge 1 ]] || die "usage: up ID N [--rate R] [--subnet S]"; up "$id" "$@" ;;
  with)
    n=${1:-}
    shift
    opts=()
    while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
    [[ ${1:-} == -- && $# -ge 2 ]] || die "usage: with ID N [--rate R] -- CMD..."
    shift
    trap 'down "$id"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    up "$id" "$n" "${opts[@]}" || exit
    hf=$(mktemp)
    trap 'down "$id"; rm -f "$hf"' EXIT
    for h in $(hosts_of "$id"); do echo "$h slots=1"; done >"$hf"
    NETNS_HOSTS_ID=$id NETNS_HOSTS_HOSTFILE=$hf "$@"
    exit ;;
  down) down "$id" ;;
  exec)
    [[ $# -ge 2 && $1 =~ ^[0-9]+$ ]] || die "usage: exec ID K CMD..."
    h=$(host_ns "$id" "$1")
    shift
    [[ -e /run/netns/$h ]] || die "no host $h (netns_hosts.sh up $id N first)"
    exec ip netns exec "$h" unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' "$h" "$@" ;;
  run)
    [[ $# -ge 1 ]] || die "usage: run ID CMD..."
    [[ -e /run/netns/$(ctl "$id") ]] || die "no hosts $id (netns_hosts.sh up $id N first)"
    export OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-$SELF agent}
    exec ip netns exec "$(ctl "$id")" "$@" ;;
  hostfile)
    [[ ${1:-} =~ ^[0-9]+$ ]] || die "usage: hostfile ID SLOTS"
    for h in $(hosts_of "$id"); do echo "$h slots=$1"; done ;;
  link)
    [[ $# -eq 2 && $2 =~ ^(up|down)$ ]] || die "usage: link ID K up|down"
    ip -n "$(ctl "$id")" link set "v$1" "$2" ;;
  rate) [[ $# -eq 2 ]] || die "usage: rate ID K R|none"; set_rate "$id" "$1" "$2" ;;
  addr)
    [[ $# -eq 1 ]] || die "usage: addr ID K"
    ip -n "$(host_ns "$id" "$1")" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 ;;
  hosts) hosts_of "$id" ;;
  *) die "unknown command '$cmd' (see netns_hosts.sh --help)" ;;
esac
