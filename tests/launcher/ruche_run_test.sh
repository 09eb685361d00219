#!/usr/bin/env bash
# Tests of launcher/ruche-run: the launch lines (--dry-run), usage errors, and the restart and
# signal policy against a fake mpirun that exits with scripted codes and records its argv; then
# one real mpirun run and one real signal forwarded through mpirun to two ranks.
# usage: ruche_run_test.sh path/to/ruche-run
set -u
RUN=$(realpath "${1:?usage: ruche_run_test.sh path/to/ruche-run}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 checks=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_eq() {  # name expected actual
  checks=$((checks + 1))
  [[ $2 == "$3" ]] || fail "$1"$'\n'"  expected: $2"$'\n'"  actual:   $3"
}

# A known environment, so that the exported variables and the core count are the same anywhere.
clean_env=(env -i PATH=/usr/bin:/bin HOME="${HOME:-/}" RUCHE_RUN_CORES=2)
clean() { "${clean_env[@]}" "$@"; }
root=""
[[ $(id -u) == 0 ]] && root=" --allow-run-as-root"

dry() {  # name expected -- env assignments and ruche-run arguments
  local name=$1 want=$2 out rc
  shift 2
  out=$(clean "$@" 2>"$tmp/err")
  rc=$?
  expect_eq "$name: exit code" 0 "$rc"
  expect_eq "$name: line" "$want" "$out"
  expect_eq "$name: stderr" "" "$(cat "$tmp/err")"
}

# ---- mpirun lines ----------------------------------------------------------------------------
dry "mpirun, 2 ranks on 2 cores" \
  "mpirun -np 2$root --map-by slot --bind-to core -x PATH ruche train --epochs 1" \
  "$RUN" -np 2 --dry-run -- ruche train --epochs 1
dry "mpirun, more ranks than cores" \
  "mpirun -np 3$root --oversubscribe --map-by slot --bind-to none -x PATH ruche train" \
  "$RUN" -np 3 --dry-run -- ruche train
dry "threads per rank: the cores shared out by binding (each rank counts its own)" \
  "mpirun -np 2$root --map-by slot:PE=4 --bind-to core -x PATH ruche train" \
  RUCHE_RUN_CORES=8 "$RUN" -np 2 --dry-run -- ruche train
dry "threads per rank: --threads wins over OMP_NUM_THREADS" \
  "mpirun -np 2$root --map-by slot:PE=3 --bind-to core -x OMP_NUM_THREADS=3 -x PATH ruche train --threads 3" \
  RUCHE_RUN_CORES=8 OMP_NUM_THREADS=2 "$RUN" -np 2 --dry-run -- ruche train --threads 3
dry "threads per rank: OMP_NUM_THREADS" \
  "mpirun -np 2$root --map-by slot:PE=2 --bind-to core -x OMP_NUM_THREADS=2 -x PATH ruche train" \
  RUCHE_RUN_CORES=8 OMP_NUM_THREADS=2 "$RUN" -np 2 --dry-run -- ruche train
dry "threads per rank: more threads than cores are not bound" \
  "mpirun -np 2$root --map-by slot --bind-to none -x OMP_NUM_THREADS=2 -x PATH ruche train --threads=2" \
  "$RUN" -np 2 --dry-run -- ruche train --threads=2
dry "-H, --iface and the exported environment" \
  "mpirun -np 4$root -H a:2,b:2 --map-by slot --bind-to core --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 -x NCCL_SOCKET_IFNAME=eth0 -x NCCL_DEBUG -x OMP_WAIT_POLICY -x RUCHE_FAULT -x PATH -x LD_LIBRARY_PATH ruche train" \
  RUCHE_FAULT=crash_at_step:3 NCCL_DEBUG=INFO OMP_WAIT_POLICY=passive LD_LIBRARY_PATH=/opt/lib \
  NCCL_SOCKET_IFNAME=lo RUCHE_RUN_MPIRUN=mpirun "$RUN" -np 4 -H a:2,b:2 --iface eth0 --dry-run -- ruche train
dry "NCCL_SOCKET_IFNAME passed by name without --iface" \
  "mpirun -np 2$root --map-by slot --bind-to core -x NCCL_SOCKET_IFNAME -x PATH ruche train" \
  NCCL_SOCKET_IFNAME=ib0 "$RUN" -np 2 --dry-run -- ruche train
printf 'n1 slots=2\n# a comment\n\nn2 slots=2\n' >"$tmp/hosts"
dry "--hostfile, threads from its slots, remote cores not bound" \
  "mpirun -np 4$root --hostfile $tmp/hosts --map-by slot --bind-to none -x PATH ruche train" \
  RUCHE_RUN_CORES=8 "$RUN" --hostfile "$tmp/hosts" -np 4 --dry-run -- ruche train
dry "--opt=value forms" \
  "mpirun -np 2$root -H a:1,b:1 --map-by slot --bind-to none -x PATH ruche train" \
  "$RUN" --np=2 --host=a:1,b:1 --dry-run -- ruche train

# The printed line is shell-quoted: the shell reads back the very words.
# shellcheck disable=SC2016  # '$HOME' is meant literally
out=$(clean "$RUN" -np 2 --dry-run -- ruche train --out 'my run' "it's" '$HOME' '')
expect_eq "quoting" \
  "mpirun -np 2$root --map-by slot --bind-to core -x PATH ruche train --out 'my run' 'it'\\''s' '\$HOME' ''" \
  "$out"
eval "set -- $out"
expect_eq "quoting reads back" "ruche|train|--out|my run|it's|\$HOME|" \
  "$(IFS='|'; echo "${*:$(($# - 6))}")"

# ---- srun lines (no Slurm here: only what the line would be) ---------------------------------
slurm=(SLURM_JOB_ID=42 SLURM_NTASKS=4 SLURM_JOB_NODELIST='n[1-2]')
dry "srun inside an allocation: -np from SLURM_NTASKS" \
  "srun --ntasks 4 --kill-on-bad-exit=1 --export=ALL ruche train" \
  "${slurm[@]}" "$RUN" --dry-run -- ruche train
dry "srun with -H, --iface and cpus-per-task" \
  "srun --ntasks 2 --nodes 2 --nodelist n1,n2 --cpus-per-task 4 --kill-on-bad-exit=1 --export=ALL,OMP_NUM_THREADS=4,NCCL_SOCKET_IFNAME=ib0,OMPI_MCA_btl_tcp_if_include=ib0 ruche train" \
  "${slurm[@]}" SLURM_CPUS_PER_TASK=4 "$RUN" -np 2 -H n1:1,n2:1 --iface ib0 --dry-run -- ruche train
dry "srun with --hostfile" \
  "srun --ntasks 4 --nodes 2 --nodelist n1,n2 --kill-on-bad-exit=1 --export=ALL ruche train" \
  "${slurm[@]}" "$RUN" --hostfile "$tmp/hosts" --dry-run -- ruche train
dry "mpirun inside an allocation: the allocation's slots, no oversubscription" \
  "mpirun -np 4$root --map-by slot --bind-to core -x PATH ruche train" \
  "${slurm[@]}" "$RUN" --launcher mpirun --dry-run -- ruche train
dry "srun asked for outside an allocation" \
  "srun --ntasks 2 --kill-on-bad-exit=1 --export=ALL ruche train" \
  "$RUN" --launcher srun -np 2 --dry-run -- ruche train

# ---- usage errors: one line on stderr, nothing on stdout, exit 2 -----------------------------
usage_error() {  # what-the-line-names [VAR=value...] ruche-run arguments
  local want=$1 out rc vars=()
  shift
  while [[ $1 == RUCHE_RUN_*=* ]]; do vars+=("$1"); shift; done
  out=$(clean "${vars[@]}" "$RUN" "$@" 2>"$tmp/err")
  rc=$?
  local err
  err=$(cat "$tmp/err")
  expect_eq "usage error [$*]: exit code" 2 "$rc"
  expect_eq "usage error [$*]: stdout" "" "$out"
  expect_eq "usage error [$*]: one line" 1 "$(wc -l <"$tmp/err")"
  checks=$((checks + 1))
  [[ $err == "ruche-run: "*"$want"* ]] || fail "usage error [$*]: '$err' does not name '$want'"
}
usage_error "unknown option '--bogus'" -np 2 --bogus -- ruche train
usage_error "expected '--'" -np 2 ruche train
usage_error "missing '--'" -np 2
usage_error "-np must be a positive number, not '0'" -np 0 -- ruche train
usage_error "-np must be a positive number, not 'two'" -np two -- ruche train
usage_error "-np N is required" -- ruche train
usage_error "-np needs a value" -np
usage_error "hostfile '$tmp/none' does not exist" -np 2 --hostfile "$tmp/none" -- ruche train
usage_error "--launcher must be mpirun or srun" -np 2 --launcher qsub -- ruche train
usage_error "--max-restarts must be a number" -np 2 --max-restarts -1 -- ruche train
usage_error "-H entry 'a:b'" -np 2 -H a:b -- ruche train
usage_error "not both" -np 2 -H a --hostfile "$tmp/hosts" -- ruche train
usage_error "'$tmp/missing-mpirun' not found" RUCHE_RUN_MPIRUN="$tmp/missing-mpirun" -np 2 -- ruche train
usage_error "--abort-grace must be seconds" -np 2 --abort-grace soon -- ruche train
usage_error "--probe-interval must be seconds > 0, not '0'" -np 2 --probe-interval 0 -- ruche train
usage_error "--probe-tries must be a number > 0" -np 2 --probe-tries x -- ruche train
usage_error "--probe-timeout must be seconds > 0" -np 2 --probe-timeout -3 -- ruche train
# --elastic and its options.
usage_error "--min-ranks needs --elastic" -np 2 -H a,b --min-ranks 1 -- ruche train
usage_error "--grow needs --elastic" -np 2 -H a,b --grow -- ruche train
usage_error "--elastic needs hosts to drop: -H or --hostfile, with mpirun" -np 2 --elastic -- ruche train
usage_error "--elastic needs hosts to drop" -np 2 -H a,b --launcher srun --elastic -- ruche train
usage_error "--min-ranks must be a number > 0, not '0'" -np 2 -H a,b --elastic --min-ranks 0 -- ruche train
usage_error "--min-ranks 3 is more than the 2 ranks of -np" -np 2 -H a,b --elastic --min-ranks=3 -- ruche train
printf 'n1 slots=2\nn2\n' >"$tmp/hosts-noslots"
usage_error "--elastic needs every host's slots: 'n2' in '$tmp/hosts-noslots' has no slots=N" -np 2 --hostfile "$tmp/hosts-noslots" --elastic -- ruche train
# Hosts: more ranks than slots (every host says its count; -H host alone is 1), before anything.
usage_error "-np 5 is more ranks than the 4 slots of the hosts ($tmp/hosts)" -np 5 --hostfile "$tmp/hosts" --dry-run -- ruche train
usage_error "-np 3 is more ranks than the 2 slots of the hosts (a,b)" -np 3 -H a,b -- ruche train
# A launch agent that is not there (the hosts would be probed through it next).
usage_error "the launch agent '$tmp/no-agent' (--agent) is not installed" -np 2 -H a:1,b:1 --agent "$tmp/no-agent" -- ruche train
# A host that does not answer the agent's probe: nothing is started (mpirun here: `true`, which
# would exit 0).
printf '#!/usr/bin/env bash\n[[ $1 == b ]] && { echo "ssh: connect to host b port 22: No route to host" >&2; exit 255; }\nexit 0\n' >"$tmp/agent"
chmod +x "$tmp/agent"
usage_error "host b does not answer through the launch agent ($tmp/agent HOST true): ssh: connect to host b port 22: No route to host" RUCHE_RUN_MPIRUN=true -np 2 -H a:1,b:1 --agent "$tmp/agent" -- ruche train

# --agent goes to mpirun as plm_rsh_agent (a dry run probes nothing).
out=$(clean "$RUN" -np 2 -H a:1,b:1 --agent "/opt/my agent" --dry-run -- ruche train 2>&1)
checks=$((checks + 1))
[[ $out == *" --mca plm_rsh_agent '/opt/my agent' "* ]] || fail "--agent not in the line: $out"

help=$("$RUN" --help)
expect_eq "--help exit code" 0 "$?"
for opt in -np -H --hostfile --iface --launcher --max-restarts --agent --abort-grace \
  --probe-interval --probe-tries --probe-timeout --elastic --min-ranks --grow --dry-run --help; do
  checks=$((checks + 1))
  grep -q -- " $opt" <<<"$help" || fail "--help does not explain $opt"
done
checks=$((checks + 1))
grep -q "69: --elastic" <<<"$help" || fail "--help does not give exit code 69"
# The first line of an elastic run is the plain one.
dry "--elastic: the first line unchanged" \
  "mpirun -np 4$root --hostfile $tmp/hosts --map-by slot --bind-to none -x PATH ruche train" \
  RUCHE_RUN_CORES=8 "$RUN" --hostfile "$tmp/hosts" -np 4 --elastic --min-ranks 2 --grow --dry-run -- ruche train

# ---- restarts and signals, against a fake mpirun ---------------------------------------------
# The fake takes line k of $FAKE/codes on its k-th run: a number is its exit code (a second word:
# the hosts the fake agent finds down from then on, "-" none); "wait U1 U2" writes $FAKE/ready
# and waits for a signal, exiting U1 on SIGUSR1 and U2 on SIGUSR2. Every run
# appends its argv to $FAKE/argv, and whether it leads its own process group to $FAKE/pgroup.
cat >"$tmp/fake-mpirun" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$FAKE/argv"
read -ra stat </proc/$$/stat
[[ ${stat[4]} == "$$" ]] && echo own >>"$FAKE/pgroup" || echo shared >>"$FAKE/pgroup"
n=$(wc -l <"$FAKE/argv")
read -ra step < <(sed -n "${n}p" "$FAKE/codes")
[[ ${step[0]} != wait && -n ${step[1]:-} ]] && echo "${step[1]}" >"$FAKE/down"  # hosts down after
if [[ ${step[0]} == wait ]]; then
  trap 'echo USR1 >>"$FAKE/signals"; kill $sleeper; exit ${step[1]}' USR1
  trap 'echo USR2 >>"$FAKE/signals"; kill $sleeper; exit ${step[2]}' USR2
  sleep 60 & sleeper=$!
  touch "$FAKE/ready"
  wait $sleeper
  exit 99  # no signal came
fi
exit "${step[0]:-98}"  # 98: ran more often than the scenario says
EOF
chmod +x "$tmp/fake-mpirun"

prefix="-np 2$root --map-by slot --bind-to core -x PATH"
scenario() {  # name codes... -- ruche-run arguments; leaves $rc, $FAKE, $tmp/err
  local name=$1
  shift
  FAKE=$tmp/$name
  mkdir -p "$FAKE"
  : >"$FAKE/argv"
  while [[ $1 != -- ]]; do echo "$1" >>"$FAKE/codes"; shift; done
  shift
  clean FAKE="$FAKE" RUCHE_RUN_MPIRUN="$tmp/fake-mpirun" "$RUN" "$@" >"$FAKE/out" 2>"$tmp/err"
  rc=$?
}
argv_lines() { cat "$FAKE/argv"; }
line_of() { echo "ruche-run: the job exited with code $1 ($2); $3"; }

scenario crash 1 1 1 1 -- -np 2 -- ruche train --epochs 1
expect_eq "crash: exit code once restarts are spent" 1 "$rc"
expect_eq "crash: runs and their argv" \
  "$prefix ruche train --epochs 1"$'\n'"$prefix ruche train --epochs 1 --resume auto"$'\n'"$prefix ruche train --epochs 1 --resume auto"$'\n'"$prefix ruche train --epochs 1 --resume auto" \
  "$(argv_lines)"
expect_eq "crash: one line per restart" \
  "$(line_of 1 "a rank failed or aborted" "restart 1 of 3 from the last checkpoint")
$(line_of 1 "a rank failed or aborted" "restart 2 of 3 from the last checkpoint")
$(line_of 1 "a rank failed or aborted" "restart 3 of 3 from the last checkpoint")
$(line_of 1 "a rank failed or aborted" "no restarts left (3 used)")" \
  "$(cat "$tmp/err")"
expect_eq "crash: the launcher leads its own process group" "own own own own" "$(tr '\n' ' ' <"$FAKE/pgroup" | sed 's/ $//')"

scenario recover 134 0 -- -np 2 --max-restarts 5 -- ruche train --resume step-00000100 --lr 0.1 --resume=latest
expect_eq "recover: exit code" 0 "$rc"
expect_eq "recover: --resume replaced by one --resume auto" \
  "$prefix ruche train --resume step-00000100 --lr 0.1 --resume=latest"$'\n'"$prefix ruche train --lr 0.1 --resume auto" \
  "$(argv_lines)"
expect_eq "recover: the restart line" \
  "$(line_of 134 "a process was killed by SIGABRT" "restart 1 of 5 from the last checkpoint")" \
  "$(cat "$tmp/err")"

scenario no-restarts 1 0 -- -np 2 --max-restarts 0 -- ruche train
expect_eq "--max-restarts 0: exit code" 1 "$rc"
expect_eq "--max-restarts 0: one run" 1 "$(argv_lines | wc -l)"

for code in 2 3 130; do
  scenario "final-$code" "$code" 0 -- -np 2 -- ruche train
  expect_eq "code $code: exit code" "$code" "$rc"
  expect_eq "code $code: never restarted" 1 "$(argv_lines | wc -l)"
  [[ $code == 3 ]] && expect_eq "code 3: the line" \
    "$(line_of 3 "training diverged" "not restarted")" "$(cat "$tmp/err")"
done

scenario cluster-stop 75 0 -- -np 2 -- ruche train
expect_eq "75 from the cluster: restarted, exit code" 0 "$rc"
expect_eq "75 from the cluster: resumed" \
  "$prefix ruche train"$'\n'"$prefix ruche train --resume auto" "$(argv_lines)"
expect_eq "75 from the cluster: the line" \
  "$(line_of 75 "checkpointed and stopped at the cluster's request" "restart 1 of 3 from the last checkpoint")" \
  "$(cat "$tmp/err")"

# --elastic against the fake mpirun and a fake launch agent: hosts named in $FAKE/down do not
# answer; those in $FAKE/noread answer but cannot read the run directory.
cat >"$tmp/fake-agent" <<'EOF'
#!/usr/bin/env bash
h=$1
shift
grep -qw -- "$h" "$FAKE/down" 2>/dev/null && { echo "ssh: connect to host $h port 22: No route to host" >&2; exit 255; }
[[ $* == true ]] && exit 0
grep -qw -- "$h" "$FAKE/noread" 2>/dev/null && exit 1
exec sh -c "$*"
EOF
chmod +x "$tmp/fake-agent"
elastic_scenario() {  # name codes... -- ruche-run arguments (hosts a, b, c; a run dir at step 40)
  local name=$1 codes=()
  FAKE=$tmp/$name
  mkdir -p "$FAKE/run/ckpt/step-00000040"
  touch "$FAKE/run/ckpt/step-00000040/"{COMMIT,manifest.pb,shard-00000-of-00003.bin}
  echo step-00000040 >"$FAKE/run/ckpt/latest"
  printf 'type: "sgd"\nbase_lr: 0.1\nlr_scaling: "linear"\nbatch_size: 16\n' >"$FAKE/run/solver.prototxt"
  shift
  while [[ $1 != -- ]]; do codes+=("$1"); shift; done
  shift
  scenario "$name" "${codes[@]}" -- -np 3 -H a,b,c --agent "$tmp/fake-agent" --probe-interval 1 \
    --probe-tries 2 "$@" -- ruche train --out "$FAKE/run"
}
eline() {  # np hosts [r: resumed]
  echo "-np $1$root -H $2 --map-by slot --bind-to none --mca plm_rsh_agent $tmp/fake-agent -x PATH ruche train --out $FAKE/run${3:+ --resume auto}"
}
down_c="did not answer 2 probes 1 s apart: ssh: connect to host c port 22: No route to host"
elastic_scenario elastic "1 c" 0 -- --elastic --min-ranks 2
expect_eq "--elastic: a lost host dropped, exit code" 0 "$rc"
expect_eq "--elastic: restarted on the other hosts' slots" \
  "$(eline 3 a,b,c)"$'\n'"$(eline 2 a:1,b:1 r)" "$(argv_lines)"
expect_eq "--elastic: the lines" \
  "ruche-run: the job exited with code 1 (a rank failed or aborted)
ruche-run: elastic: host c dropped ($down_c): the job goes on with 2 ranks on a, b
ruche-run: elastic: restarting from step 40 ($FAKE/run/ckpt/step-00000040) on 2 ranks (was 3): global batch 48 -> 32 (16 per rank), lr 0.01875 -> 0.0125 (--lr-scaling linear); the run is no longer bit-identical to one that never stopped
$(line_of 1 "a rank failed or aborted" "restart 1 of 3 from the last checkpoint")" \
  "$(cat "$tmp/err")"

elastic_scenario elastic-min "1 c" 0 -- --elastic --min-ranks 3
expect_eq "--min-ranks: exit code 69, not restarted" "69 1" "$rc $(argv_lines | wc -l)"
expect_eq "--min-ranks: the line" \
  "ruche-run: elastic: host c lost for good ($down_c): 2 ranks left, fewer than --min-ranks 3; stopping (exit 69); the last checkpoint, $FAKE/run/ckpt/step-00000040, is intact (continue with --resume auto once enough hosts answer)" \
  "$(tail -1 "$tmp/err")"

elastic_scenario elastic-grow "1 c" "1 -" 0 -- --elastic --grow
expect_eq "--grow: exit code" 0 "$rc"
expect_eq "--grow: a host that answers again joins at the next restart" \
  "$(eline 3 a,b,c)"$'\n'"$(eline 2 a:1,b:1 r)"$'\n'"$(eline 3 a:1,b:1,c:1 r)" "$(argv_lines)"
checks=$((checks + 1))
grep -q "^ruche-run: elastic: host c answers again: re-admitted (--grow); the job goes on with 3 ranks on a, b, c$" "$tmp/err" ||
  fail "--grow: no re-admission line: $(cat "$tmp/err")"

elastic_scenario elastic-nogrow "1 c" "1 -" 0 -- --elastic
expect_eq "no --grow: a host that answers again stays out" \
  "$(eline 3 a,b,c)"$'\n'"$(eline 2 a:1,b:1 r)"$'\n'"$(eline 2 a:1,b:1 r)" "$(argv_lines)"

# Every host must read the last checkpoint before a restart: --elastic drops one that cannot;
# without it that is a user error.
mkdir -p "$tmp/elastic-noread" && echo b >"$tmp/elastic-noread/noread"
elastic_scenario elastic-noread 1 0 -- --elastic
expect_eq "--elastic, a host that cannot read the checkpoint: dropped" \
  "$(eline 3 a,b,c)"$'\n'"$(eline 2 a:1,c:1 r)" "$(argv_lines)"
checks=$((checks + 1))
grep -q "^ruche-run: elastic: host b dropped (cannot read the last checkpoint $FAKE/run/ckpt/step-00000040: the run directory must be on storage every host sees)" "$tmp/err" ||
  fail "--elastic: no line for the host that cannot read: $(cat "$tmp/err")"
mkdir -p "$tmp/noread" && echo b >"$tmp/noread/noread"
elastic_scenario noread 1 0 --
expect_eq "a host that cannot read the checkpoint: exit 2, not restarted" "2 1" "$rc $(argv_lines | wc -l)"
expect_eq "a host that cannot read the checkpoint: the line" \
  "ruche-run: host b cannot read the last checkpoint $FAKE/run/ckpt/step-00000040: the run directory must be on storage every host sees" \
  "$(tail -1 "$tmp/err")"

# Signals to ruche-run itself. It runs with job control on, as from a terminal (a background job
# of a script would start with SIGINT ignored), and the signal is sent only once the fake has
# written its ready file: no sleeps, no races.
signal_scenario() {  # name signal codes... -- ruche-run arguments
  local name=$1 sig=$2
  shift 2
  FAKE=$tmp/$name
  mkdir -p "$FAKE"
  : >"$FAKE/argv"
  while [[ $1 != -- ]]; do echo "$1" >>"$FAKE/codes"; shift; done
  shift
  set -m
  # Not through a function: $! must be ruche-run itself (env execs it), not a subshell.
  "${clean_env[@]}" FAKE="$FAKE" RUCHE_RUN_MPIRUN="$tmp/fake-mpirun" "$RUN" "$@" \
    >"$FAKE/out" 2>"$tmp/err" &
  local pid=$! i
  set +m
  for ((i = 0; i < 600; i++)); do  # a guard against a hang, not a timing
    [[ -e $FAKE/ready ]] && break
    sleep 0.05
  done
  [[ -e $FAKE/ready ]] || fail "$name: the fake never became ready"
  kill "-$sig" "$pid"
  wait "$pid"
  rc=$?
}
signal_scenario term TERM "wait 75 130" 0 -- -np 2 -- ruche train
expect_eq "SIGTERM: forwarded as SIGUSR1" USR1 "$(cat "$FAKE/signals")"
expect_eq "SIGTERM: exit code 75, not restarted" "75 1" "$rc $(argv_lines | wc -l)"
expect_eq "SIGTERM: the line" \
  "ruche-run: the job checkpointed and stopped (code 75); add --resume auto to the command to continue" \
  "$(cat "$tmp/err")"

signal_scenario int INT "wait 75 130" 0 -- -np 2 -- ruche train --resume auto
expect_eq "SIGINT: forwarded as SIGUSR2" USR2 "$(cat "$FAKE/signals")"
expect_eq "SIGINT: exit code 130, not restarted" "130 1" "$rc $(argv_lines | wc -l)"

signal_scenario term-crash TERM "wait 1 1" 0 -- -np 2 -- ruche train
expect_eq "SIGTERM then a crash: not restarted" "1 1" "$rc $(argv_lines | wc -l)"

# ---- the real mpirun ---------------------------------------------------------------------
# The line ruche-run builds runs as it is (as root, --allow-run-as-root comes by itself; on a
# machine with fewer than 2 cores, --oversubscribe).
if ! command -v mpirun >/dev/null; then
  fail "mpirun is not installed: the real runs cannot be checked"
else
  real_env=(env -u RUCHE_RUN_MPIRUN OMPI_MCA_mpi_yield_when_idle=1 RUCHE_RUN_CORES=)
  out=$("${real_env[@]}" "$RUN" -np 2 -- hostname 2>"$tmp/err")
  rc=$?
  expect_eq "real mpirun: exit code" 0 "$rc"
  expect_eq "real mpirun: both ranks ran" "$(hostname)"$'\n'"$(hostname)" "$out"
  [[ $rc == 0 ]] || cat "$tmp/err"

  # SIGTERM to ruche-run reaches two real ranks as SIGUSR1 through mpirun.
  FAKE=$tmp/real
  mkdir -p "$FAKE"
  cat >"$tmp/rank" <<'EOF'
#!/usr/bin/env bash
r=$OMPI_COMM_WORLD_RANK
trap 'echo "rank $r USR1" >>"$FAKE/signals.$r"; kill $sleeper; exit 75' USR1
trap 'echo "rank $r USR2" >>"$FAKE/signals.$r"; kill $sleeper; exit 130' USR2
sleep 60 & sleeper=$!
touch "$FAKE/ready.$r"
wait $sleeper
exit 99
EOF
  chmod +x "$tmp/rank"
  set -m
  FAKE=$FAKE "${real_env[@]}" "$RUN" -np 2 -- "$tmp/rank" >"$FAKE/out" 2>"$tmp/err" &
  pid=$!
  set +m
  for ((i = 0; i < 600; i++)); do
    [[ -e $FAKE/ready.0 && -e $FAKE/ready.1 ]] && break
    sleep 0.05
  done
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  expect_eq "real mpirun, SIGTERM: exit code" 75 "$rc"
  expect_eq "real mpirun, SIGTERM: both ranks got SIGUSR1" "rank 0 USR1 rank 1 USR1" \
    "$(cat "$FAKE/signals.0" "$FAKE/signals.1" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
  [[ $rc == 75 ]] || cat "$tmp/err"
fi

if ((failures)); then
  echo "$failures of $checks checks failed"
  exit 1
fi
echo "all $checks checks passed"
