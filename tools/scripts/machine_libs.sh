# Sourced by gpu_bundle.sh and gpu_bundle_previous.sh: the shared libraries a GPU bundle leaves to
# the GPU machine, glibc's own (the machine's must be used) and CUDA's (the machine brings them).
machine_lib() {
  case "$1" in
    linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libutil.so*|\
    libresolv.so*|libnsl.so*|libanl.so*|libmvec.so*|libBrokenLocale.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcudnn*|libcublas*|libnccl*|libnvrtc*|libnvJitLink*|libcufft*|\
    libcurand*|libcusparse*|libcusolver*|libnvidia-*) return 0 ;;
  esac
  return 1
}
