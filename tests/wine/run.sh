#!/usr/bin/env bash
# The Windows backend tested for real under Wine: mingw-built targets, the module built as usual, and
# the shared engine/module tests published as a self-contained win-x64 program. Prints, last,
# "Wine suite: N passed, N failed"; exits non-zero when a test failed or the run broke.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${WINE_TEST_OUT:-$repo/artifacts/wine}
cd "$repo"

need=()
command -v wine >/dev/null 2>&1 || need+=(wine wine64 wine64-preloader)
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64-win32)
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
# Symbol listings for the tests' oracle; mingw's nm omits __ImageBase, so it is added from the PE header.
for exe in target.exe widetarget.exe enftarget.exe; do
    x86_64-w64-mingw32-nm --defined-only "$out/native/$exe" > "$out/native/$exe.syms"
    x86_64-w64-mingw32-objdump -p "$out/native/$exe" | awk '/^ImageBase/ { print $2 " A __ImageBase" }' >> "$out/native/$exe.syms"
done

dotnet build src/HotpatchTools -c Release --verbosity quiet -nologo || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }
dotnet publish tests/HotpatchTools.WineTests -c Release -r win-x64 --self-contained true -o "$out/publish" --verbosity quiet -nologo || { echo "Wine suite: 0 passed, 1 failed"; exit 1; }

export WINEPREFIX="$out/prefix" WINEDEBUG=-all
unset DISPLAY
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    wine wineboot -i >/dev/null 2>&1
    wine winecfg -v win10 >/dev/null 2>&1
    # Without this an unhandled exception starts winedbg and the process exits 0: a crash would look like a pass.
    wine reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' /v Debugger /t REG_SZ /d '' /f >/dev/null 2>&1
fi

# CoreCLR's W^X double mapping is unreliable under Wine: with it the test program itself crashed now
# and then ("Internal CLR error" while finalizing dynamic methods; cf. dotnet/runtime#91695).
export DOTNET_EnableWriteXorExecute=0
export HOTPATCH_NATIVE_DIR="$(winepath -w "$out/native")" HOTPATCH_REPO="$(winepath -w "$repo")"
timeout 1500 wine "$out/publish/HotpatchTools.WineTests.exe" 2>&1 | tee "$out/wine.log"
status=${PIPESTATUS[0]}
wineserver -k 2>/dev/null

summary=$(grep -E "Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+" "$out/wine.log" | tail -1)
total=$(sed -n 's/.*Total: \([0-9]*\).*/\1/p' <<<"$summary")
errors=$(sed -n 's/.*Errors: \([0-9]*\).*/\1/p' <<<"$summary")
failed=$(sed -n 's/.*Failed: \([0-9]*\).*/\1/p' <<<"$summary")
skipped=$(sed -n 's/.*Skipped: \([0-9]*\).*/\1/p' <<<"$summary")
notrun=$(sed -n 's/.*Not Run: \([0-9]*\).*/\1/p' <<<"$summary")
if [ -z "$total" ]; then echo "Wine suite: 0 passed, 1 failed"; exit 1; fi
failed=$((failed + errors))
passed=$((total - failed - ${skipped:-0} - ${notrun:-0}))
# A crash or timeout after some tests passed must still fail the suite.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "Wine suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
