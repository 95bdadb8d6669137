#!/usr/bin/env bash
# The Windows backend tested for real under Wine: mingw-built targets, the module built as usual, and
# the shared engine/module tests published as a self-contained win-x64 program. Prints, last,
# "Wine suite: N passed, N failed"; exits non-zero when a test failed or the run broke.
# A hung run fails in minutes: each test class runs as its own process under a time limit, and one that
# makes no CPU progress for a while or whose runtime aborts is killed and counted as failed.
# `run.sh --bench` runs the Windows benchmark rows instead of the tests (see README, Benchmarks).
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${WINE_TEST_OUT:-$repo/artifacts/wine}
cd "$repo"

need=()
command -v wine >/dev/null 2>&1 || need+=(wine wine64 wine64-preloader)
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64-win32)
# 32-bit targets (Wow64LiveTests): Debian's i386 Wine and the i686 compiler.
command -v i686-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-i686-win32)
if [ ! -x /usr/lib/wine/wine ]; then
    dpkg --print-foreign-architectures | grep -qx i386 || dpkg --add-architecture i386
    need+=(wine32:i386)
fi
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
fi

rm -rf "$out/native" "$out/publish"
mkdir -p "$out/native"
# The same sources as the Linux targets; exports stand in for ELF symbols, .pdata for symbol sizes.
x86_64-w64-mingw32-gcc -O2 -Wl,--export-all-symbols -o "$out/native/target.exe" tests/native/target.c tests/native/sites.S || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
cp "$out/native/target.exe" "$out/native/widetarget.exe"
# And under a third name for the enforcement tests, which sweep every process that has their module.
cp "$out/native/target.exe" "$out/native/enftarget.exe"
# Loaded by the test program itself: without it Wine hangs the program after the first failing test (see the file).
x86_64-w64-mingw32-gcc -O2 -shared -Wall -Wno-array-bounds -o "$out/native/stale_seh_frames.dll" tests/wine/stale_seh_frames.c || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
# Symbol listings for the tests' oracle; mingw's nm omits __ImageBase, so it is added from the PE header.
for exe in target.exe widetarget.exe enftarget.exe; do
    x86_64-w64-mingw32-nm --defined-only "$out/native/$exe" > "$out/native/$exe.syms"
    x86_64-w64-mingw32-objdump -p "$out/native/$exe" | awk '/^ImageBase/ { print $2 " A __ImageBase" }' >> "$out/native/$exe.syms"
done
# The same target as a 32-bit program (sites.S assembled for i386), patched by the 64-bit test program (Wow64LiveTests).
i686-w64-mingw32-gcc -O2 -Wl,--export-all-symbols -o "$out/native/target32.exe" tests/native/target.c tests/native/sites.S || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
i686-w64-mingw32-nm --defined-only "$out/native/target32.exe" > "$out/native/target32.exe.syms"
i686-w64-mingw32-objdump -p "$out/native/target32.exe" | awk '/^ImageBase/ { print $2 " A __ImageBase" }' >> "$out/native/target32.exe.syms"
# Wine's own kernelbase.dll, patched live by WineDllLiveTests: its static functions named from its COFF symbols.
wine_dll=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/kernelbase.dll
x86_64-w64-mingw32-nm --defined-only "$wine_dll" > "$out/native/kernelbase.dll.syms"
x86_64-w64-mingw32-objdump -p "$wine_dll" | awk '/^ImageBase/ { print $2 " A __ImageBase" }' >> "$out/native/kernelbase.dll.syms"

dotnet build src/HotpatchTools -c Release --verbosity quiet -nologo || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
dotnet publish tests/HotpatchTools.WineTests -c Release -r win-x64 --self-contained true -o "$out/publish" --verbosity quiet -nologo || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
# The same program as a 32-bit process, for the class that checks what a 32-bit PowerShell host gets (Wow64HostTests).
dotnet publish tests/HotpatchTools.WineTests -c Release -r win-x86 --self-contained true -o "$out/publish32" --verbosity quiet -nologo || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }

# 64-bit programs go to the 64-bit loader explicitly: with Debian's wine32 installed, `wine` is the 32-bit one.
wine64=/usr/lib/wine/wine64
[ -x "$wine64" ] || wine64=$(command -v wine64 || command -v wine)
export WINEPREFIX="$out/prefix" WINEDEBUG=-all
unset DISPLAY
# A prefix made before wine32 was installed has no 32-bit system DLLs, and 32-bit programs fail to start in it
# ("could not load kernel32.dll, status c0000135"): it is made again.
[ -f "$WINEPREFIX/system.reg" ] && [ -x /usr/lib/wine/wine ] && [ ! -f "$WINEPREFIX/drive_c/windows/syswow64/kernel32.dll" ] && rm -rf "$WINEPREFIX"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    "$wine64" wineboot -i >/dev/null 2>&1
    "$wine64" winecfg -v win10 >/dev/null 2>&1
    # Without this an unhandled exception starts winedbg and the process exits 0: a crash would look like a pass.
    "$wine64" reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' /v Debugger /t REG_SZ /d '' /f >/dev/null 2>&1
fi

# CoreCLR's W^X double mapping is unreliable under Wine: with it the test program itself crashed now
# and then ("Internal CLR error" while finalizing dynamic methods; cf. dotnet/runtime#91695).
export DOTNET_EnableWriteXorExecute=0
# Fewer collections, fewer runtime suspensions of the program's own threads: Wine answers SuspendThread on a thread
# it already counts as terminated with ACCESS_DENIED (server/thread.c), which the runtime treats as fatal
# ("Fatal error. SuspendThread failed with error 5"). A gen0 budget of 128 MB makes collections rare here.
export DOTNET_GCgen0size=0x8000000
export HOTPATCH_NATIVE_DIR="$(winepath -w "$out/native")" HOTPATCH_REPO="$(winepath -w "$repo")"
exe="$out/publish/HotpatchTools.WineTests.exe"
exe32="$out/publish32/HotpatchTools.WineTests.exe"
wine32=/usr/lib/wine/wine
[ -x "$wine32" ] || wine32=$(command -v wine)
host32_class=HotpatchTools.Tests.Wow64HostTests

if [ "${1:-}" = "--bench" ]; then
    # The same bench code on both sides: natively on Linux (as root, ptrace), then as the win-x64 program under Wine.
    timeout 900 dotnet run -c Release --project tests/HotpatchTools.WineTests -- --bench 2>&1 | grep -E "^(row\||platform bench)" | tee "$out/bench-linux.log"
    timeout 900 "$wine64" "$exe" --bench 2>&1 | tr -d '\r' | grep -E "^(row\||platform bench)" | tee "$out/bench-wine.log"
    status=${PIPESTATUS[0]}
    wineserver -k 2>/dev/null
    echo
    printf '| Figure | Linux (ptrace) | Windows under Wine (debug object) |\n|---|---|---|\n'
    awk -F'|' 'FNR == NR { if ($1 == "row") linux[$2] = $3; next }
               $1 == "row" { printf "| %s | %s | %s |\n", $2, ($2 in linux ? linux[$2] : "n/a"), $3 }' \
        "$out/bench-linux.log" "$out/bench-wine.log"
    exit "$status"
fi

# Limits, in seconds: the whole suite, one class, and a stretch without CPU progress of the test program.
total_limit=${WINE_TOTAL_LIMIT:-1500}
class_limit=${WINE_CLASS_LIMIT:-900}
idle_limit=${WINE_IDLE_LIMIT:-120}
hz=$(getconf CLK_TCK)

# Runs one class (in the 64-bit program, or in the one given with its loader); prints its log; sets $verdict to ""
# or why it was stopped.
run_class() {
    local class=$1 log=$2 loader=${3:-$wine64} program=${4:-$exe} pid start now ticks last_ticks last_change
    "$loader" "$program" -noLogo -noColor -class "$class" >"$log" 2>&1 &
    pid=$!
    start=$(date +%s); last_ticks=-1; last_change=$start; verdict=""
    while kill -0 "$pid" 2>/dev/null; do
        sleep 2
        now=$(date +%s)
        # utime + stime of the test program's process (the Windows program runs in the loader's pid).
        ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo "$last_ticks")
        if [ "$ticks" -gt $((last_ticks + hz / 2)) ]; then last_ticks=$ticks; last_change=$now; fi
        if grep -q "^Fatal error" "$log"; then verdict="the runtime aborted"; sleep 3
        elif [ $((now - start)) -gt "$class_limit" ]; then verdict="over ${class_limit} s"
        elif [ $((now - last_change)) -gt "$idle_limit" ]; then verdict="no CPU progress for ${idle_limit} s"
        elif [ $((now - suite_start)) -gt "$total_limit" ]; then verdict="the suite is over ${total_limit} s"
        fi
        if [ -n "$verdict" ]; then kill -9 "$pid" 2>/dev/null; break; fi
    done
    wait "$pid" 2>/dev/null
    class_status=$?
    # Targets and installers the class left behind, and the prefix's server: every class starts clean.
    wineserver -k 2>/dev/null
}

suite_start=$(date +%s)
classes=$(timeout 300 "$wine64" "$exe" -list classes 2>/dev/null | tr -d '\r' | grep -E '^[A-Za-z_][A-Za-z0-9_.+]*$')
wineserver -k 2>/dev/null
[ -n "$classes" ] && classes="$(grep -vx "$host32_class" <<<"$classes") $host32_class"
# WINE_CLASSES="HotpatchTools.Tests.RefusalTests ...": a subset, for working on one area.
[ -n "${WINE_CLASSES:-}" ] && classes=$WINE_CLASSES
if [ -z "$classes" ]; then echo "Could not list the test classes"; echo "Wine suite: 0 passed, 1 failed"; exit 1; fi
passed=0; failed=0
mkdir -p "$out/logs"
: > "$out/wine.log"
for class in $classes; do
    log="$out/logs/$class.log"
    t0=$(date +%s)
    if [ "$class" = "$host32_class" ]; then run_class "$class" "$log" "$wine32" "$exe32"; else run_class "$class" "$log"; fi
    grep -v "FS volume label" "$log" | tee -a "$out/wine.log" | grep -E "\[FAIL\]|^Fatal error" || true
    summary=$(grep -E "Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+" "$log" | tail -1)
    total=$(sed -n 's/.*Total: \([0-9]*\).*/\1/p' <<<"$summary")
    errors=$(sed -n 's/.*Errors: \([0-9]*\).*/\1/p' <<<"$summary")
    f=$(sed -n 's/.*Failed: \([0-9]*\).*/\1/p' <<<"$summary")
    skipped=$(sed -n 's/.*Skipped: \([0-9]*\).*/\1/p' <<<"$summary")
    notrun=$(sed -n 's/.*Not Run: \([0-9]*\).*/\1/p' <<<"$summary")
    if [ -z "$total" ]; then
        # No summary: the class crashed or was stopped; whatever it ran is not trusted.
        p=0; f=1
    else
        f=$((f + errors)); p=$((total - f - ${skipped:-0} - ${notrun:-0}))
        if [ "$class_status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    fi
    passed=$((passed + p)); failed=$((failed + f))
    echo "$class: $p passed, $f failed ($(( $(date +%s) - t0 )) s${verdict:+; stopped: $verdict})"
done
echo "Wine suite run time: $(( $(date +%s) - suite_start )) s"
echo "Wine suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
