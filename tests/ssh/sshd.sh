#!/usr/bin/env bash
# The SSH tier's server: Debian's sshd on 127.0.0.1 only, in a folder of its own, with tests/HotpatchTools.RemoteHost
# (or a real pwsh) as the "powershell" subsystem, as pwsh is on a real computer.
#   sshd.sh start DIR [PWSH]
#                       generate keys and config in DIR, start sshd, print the variables the tests read:
#                       HOTPATCHTOOLS_SSH_PORT=...  HOTPATCHTOOLS_SSH_KEY=...
#                       PWSH: the subsystem is `PWSH -sshs` instead of the host; a pwsh.dll (the tool-installed
#                       pwsh of .config/dotnet-tools.json, $PSHOME/pwsh.dll) runs with this machine's dotnet.
#   sshd.sh stop DIR    stop the sshd started in DIR
# Needs root (the tests log in as root to patch processes), openssh-server and a Release build of the host.
set -euo pipefail
cmd=${1:?start or stop}; dir=${2:?folder}; pwsh=${3:-}
repo=$(cd "$(dirname "$0")/../.." && pwd)

# Stops the server of this folder and waits until it is gone: on exit sshd deletes its pid file, which would
# otherwise race with the pid file of a server started next in the same folder.
stop() {
    [ -f "$dir/sshd.pid" ] || return 0
    local pid
    pid=$(cat "$dir/sshd.pid")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

mkdir -p "$dir" /run/sshd
# Started again in the same folder: the previous server goes first.
stop
dir=$(cd "$dir" && pwd)
host_dll="$repo/tests/HotpatchTools.RemoteHost/bin/Release/net10.0/HotpatchTools.RemoteHost.dll"
dotnet_exe=$(readlink -f "$(command -v dotnet)")
case "$pwsh" in
    "") subsystem="$dotnet_exe $host_dll -sshs -NoLogo" ;;
    *.dll) subsystem="$dotnet_exe $pwsh -sshs -NoLogo -NoProfile" ;;
    *) subsystem="$pwsh -sshs -NoLogo -NoProfile" ;;
esac
rm -f "$dir/host_key" "$dir/host_key.pub" "$dir/client_key" "$dir/client_key.pub"
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"

# A port nothing listens on yet.
port=$((20000 + $$ % 20000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

cat > "$dir/sshd_config" <<CONFIG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
# The far side is another "machine": its trust store, catalog and audit log live in this run's folder.
SetEnv HOTPATCHTOOLS_MACHINE_ROOT=$dir/machine
Subsystem powershell $subsystem
CONFIG

/usr/sbin/sshd -t -f "$dir/sshd_config"
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
echo "HOTPATCHTOOLS_SSH_PORT=$port"
echo "HOTPATCHTOOLS_SSH_KEY=$dir/client_key"
