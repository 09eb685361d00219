# Source me (bash): . bundle/env.sh   Sets LD_LIBRARY_PATH so the bundle's binaries run here:
# the bundle's libraries first, then cuDNN 9, cuBLAS 13 and NCCL 2. When the system (ldconfig)
# has all three they come from it; otherwise the directories of those it has come first, then
# Python's nvidia pip packages (PyTorch's), then /usr/local/cuda, so whatever the system lacks
# comes from pip. A library found nowhere is named on stderr. Also sets RUCHE_SOURCE_DIR,
# RUCHE_BINARY and Open MPI's install directories. RUCHE_ENV_VERBOSE=1 prints where each library
# came from and runs ruche_env_check (ldd's "not found" lines for bin/ruche).
# (tools/scripts/bundle_env.sh in the source tree; gpu_bundle.sh copies it to bundle/env.sh.)
#
# Knobs: RUCHE_IGNORE_SYSTEM_CUDA=1 ignores the system's copies (tries the pip packages);
# RUCHE_PYTHON, the python asked for its nvidia packages. For tests/tools/bundle_env_test.sh only:
# RUCHE_LDCONFIG_OUTPUT (a file of `ldconfig -p` text, read instead of running ldconfig),
# RUCHE_NVIDIA_PIP_ROOT (nvidia package directories, ':'-separated, instead of asking python),
# RUCHE_CUDA_FALLBACK_DIRS (instead of $CUDA_HOME/lib64 and /usr/local/cuda/lib64, lib).
RUCHE_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RUCHE_BUNDLE

ruche_libs=(libcudnn.so.9 libcublas.so.13 libnccl.so.2)
declare -A ruche_lib_name=([libcudnn.so.9]="cuDNN 9" [libcublas.so.13]="cuBLAS 13"
                           [libnccl.so.2]="NCCL 2")
declare -A ruche_lib_from=()

# ---- the system's copies (ldconfig's cache), the directories they sit in ----
if [ "${RUCHE_IGNORE_SYSTEM_CUDA:-0}" = 1 ]; then
  ruche_ldconfig=""
elif [ -n "${RUCHE_LDCONFIG_OUTPUT:-}" ]; then
  ruche_ldconfig=$(cat "$RUCHE_LDCONFIG_OUTPUT")
else
  ruche_ldconfig=$( (/sbin/ldconfig -p || ldconfig -p) 2>/dev/null || true)
fi
ruche_system_dirs=""
ruche_system_all=1
for ruche_lib in "${ruche_libs[@]}"; do
  ruche_path=$(awk -v n="$ruche_lib" '$1 == n {print $NF; exit}' <<<"$ruche_ldconfig")
  if [ -n "$ruche_path" ]; then
    ruche_lib_from[$ruche_lib]="$(dirname "$ruche_path") (system)"
    case ":$ruche_system_dirs:" in
      *":$(dirname "$ruche_path"):"*) ;;
      *) ruche_system_dirs="${ruche_system_dirs:+$ruche_system_dirs:}$(dirname "$ruche_path")" ;;
    esac
  else
    ruche_system_all=0
  fi
done

# ---- otherwise: the system's directories first, then pip's, then /usr/local/cuda ----
ruche_cuda_dirs=""
if [ "$ruche_system_all" = 0 ]; then
  ruche_pip_roots=${RUCHE_NVIDIA_PIP_ROOT:-}
  if [ -z "$ruche_pip_roots" ]; then
    for ruche_py in "${RUCHE_PYTHON:-}" python3 /usr/bin/python3; do
      [ -n "$ruche_py" ] && command -v "$ruche_py" >/dev/null 2>&1 || continue
      # The package's directories only (nvidia is a namespace package: one per site dir).
      ruche_pip_roots=$(env -u LD_LIBRARY_PATH "$ruche_py" -c \
        'import nvidia; print(":".join(nvidia.__path__))' 2>/dev/null || true)
      [ -n "$ruche_pip_roots" ] && break
    done
  fi
  ruche_pip_dirs=""
  IFS=: read -ra ruche_roots <<<"$ruche_pip_roots"
  for ruche_root in "${ruche_roots[@]}"; do
    for ruche_dir in "$ruche_root"/*/lib; do
      compgen -G "$ruche_dir/*.so*" >/dev/null || continue
      ruche_pip_dirs="${ruche_pip_dirs:+$ruche_pip_dirs:}$ruche_dir"
    done
  done
  ruche_fallback_dirs=""
  IFS=: read -ra ruche_roots <<<"${RUCHE_CUDA_FALLBACK_DIRS-${CUDA_HOME:+$CUDA_HOME/lib64:}/usr/local/cuda/lib64:/usr/local/cuda/lib}"
  for ruche_dir in "${ruche_roots[@]}"; do
    for ruche_lib in "${ruche_libs[@]}"; do
      if [ -e "$ruche_dir/$ruche_lib" ]; then
        case ":$ruche_fallback_dirs:" in
          *":$ruche_dir:"*) ;;  # $CUDA_HOME is often /usr/local/cuda
          *) ruche_fallback_dirs="${ruche_fallback_dirs:+$ruche_fallback_dirs:}$ruche_dir" ;;
        esac
        break
      fi
    done
  done
  for ruche_dir in "$ruche_system_dirs" "$ruche_pip_dirs" "$ruche_fallback_dirs"; do
    [ -n "$ruche_dir" ] && ruche_cuda_dirs="${ruche_cuda_dirs:+$ruche_cuda_dirs:}$ruche_dir"
  done
  # Where each missing one is found first, in the order the loader searches.
  for ruche_lib in "${ruche_libs[@]}"; do
    [ -n "${ruche_lib_from[$ruche_lib]:-}" ] && continue
    IFS=: read -ra ruche_roots <<<"$ruche_pip_dirs:$ruche_fallback_dirs"
    for ruche_dir in "${ruche_roots[@]}"; do
      [ -n "$ruche_dir" ] && [ -e "$ruche_dir/$ruche_lib" ] || continue
      case ":$ruche_pip_dirs:" in
        *":$ruche_dir:"*) ruche_lib_from[$ruche_lib]="$ruche_dir (pip)" ;;
        *) ruche_lib_from[$ruche_lib]="$ruche_dir (cuda)" ;;
      esac
      break
    done
  done
fi
ruche_missing=""
for ruche_lib in "${ruche_libs[@]}"; do
  [ -n "${ruche_lib_from[$ruche_lib]:-}" ] \
    || ruche_missing="${ruche_missing:+$ruche_missing, }$ruche_lib (${ruche_lib_name[$ruche_lib]})"
done
[ -z "$ruche_missing" ] || echo "ruche env.sh: not found in the system (ldconfig), Python's nvidia" \
  "packages or /usr/local/cuda: $ruche_missing" >&2

# This Debian's libstdc++ needs glibc >= 2.36; where it cannot load, the machine's own is used.
ruche_base="$RUCHE_BUNDLE/lib${ruche_cuda_dirs:+:$ruche_cuda_dirs}"
if [ -d "$RUCHE_BUNDLE/lib/fallback" ] && LD_LIBRARY_PATH="$RUCHE_BUNDLE/lib/fallback:$ruche_base" \
     "$RUCHE_BUNDLE/bin/ruche" --version >/dev/null 2>&1; then
  LD_LIBRARY_PATH="$RUCHE_BUNDLE/lib/fallback:$ruche_base${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  LD_LIBRARY_PATH="$ruche_base${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export LD_LIBRARY_PATH
export PATH="$RUCHE_BUNDLE/bin:$PATH"
export RUCHE_SOURCE_DIR="$RUCHE_BUNDLE/src"
export RUCHE_BINARY="$RUCHE_BUNDLE/bin/ruche"
if [ -d "$RUCHE_BUNDLE/lib/openmpi3" ]; then
  export OPAL_PREFIX="$RUCHE_BUNDLE" OPAL_EXEC_PREFIX="$RUCHE_BUNDLE"
  export OPAL_BINDIR="$RUCHE_BUNDLE/bin" OPAL_LIBDIR="$RUCHE_BUNDLE/lib"
  export OPAL_PKGLIBDIR="$RUCHE_BUNDLE/lib/openmpi3" OPAL_PKGDATADIR="$RUCHE_BUNDLE/share/openmpi"
  export OPAL_DATADIR="$RUCHE_BUNDLE/share" OPAL_DATAROOTDIR="$RUCHE_BUNDLE/share"
  export OPAL_SYSCONFDIR="$RUCHE_BUNDLE/etc/openmpi"
  export OMPI_MCA_mca_base_component_path="$RUCHE_BUNDLE/lib/openmpi3"
  [ -d "$RUCHE_BUNDLE/lib/pmix" ] && export PMIX_MCA_mca_base_component_path="$RUCHE_BUNDLE/lib/pmix"
  [ -d "$RUCHE_BUNDLE/share/pmix" ] && export PMIX_INSTALL_PREFIX="$RUCHE_BUNDLE"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# ldd's "not found" lines for bin/ruche (prefixed "ruche env.sh: ldd: "); fails when there are any.
ruche_env_check() {
  local lines
  lines=$(ldd "$RUCHE_BUNDLE/bin/ruche" 2>&1 | grep "not found" || true)
  [ -z "$lines" ] && return 0
  sed 's/^[[:space:]]*/ruche env.sh: ldd: /' <<<"$lines" >&2
  return 1
}

if [ "${RUCHE_ENV_VERBOSE:-0}" = 1 ]; then
  echo "ruche bundle: $RUCHE_BUNDLE"
  for ruche_lib in "${ruche_libs[@]}"; do
    printf '%-9s %-15s <- %s\n' "${ruche_lib_name[$ruche_lib]}" "$ruche_lib" \
      "${ruche_lib_from[$ruche_lib]:-not found}"
  done
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ruche_env_check || true  # said on stderr; a caller's set -e does not end here
fi
unset ruche_libs ruche_lib_name ruche_lib_from ruche_ldconfig ruche_system_dirs ruche_system_all \
  ruche_lib ruche_path ruche_cuda_dirs ruche_pip_roots ruche_py ruche_pip_dirs ruche_roots \
  ruche_root ruche_dir ruche_fallback_dirs ruche_missing ruche_base
true  # sourcing succeeds; what is missing was said above
