# Sourced by setup.sh, airflow.sh and cluster.sh before they generate anything: what they and the
# programs they start write (.env, var/pki, airflow.db with its connections, the catalog, Airflow's
# generated passwords file, logs that may print it, the cluster's files) may hold a secret or personal
# data, so only the owner may read it (files 0600, directories 0700).
umask 077

# private_files FILE...: for files made before this umask (an older checkout) or by a program that sets
# its own mode, chmod go-rwx the ones that exist.
private_files() {
  local f
  for f in "$@"; do
    if [ -e "$f" ]; then chmod go-rwx "$f"; fi
  done
  return 0
}
