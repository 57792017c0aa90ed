#!/bin/sh
# Builds and runs the C test programs listed in c-tests/tests.list against
# the staged libraries (see the Makefile, which sets the variables below),
# and ends with the line "N passed, M failed". Exits 1 if anything failed.
#
#   CC           C compiler (cc)
#   CFLAGS       flags for every build (-std=c99 -Wall -Wextra -Werror -g)
#   LIBDIR       directory with libdmsg.so and libdmsg.a (build/lib)
#   INCDIR       directory with dmsg.h and sys/dmsg.h (include)
#   OUTDIR       where the programs go (build/c-tests)
#   STATIC_LIBS  system libraries libdmsg.a needs
#   VARIANTS     which builds to run (shared static asan)
#   TIMEOUT      seconds one program may run (300)
#   CXX          C++ compiler for the header check (c++; skipped if absent)
#   ONLY         run only this test name
set -u

here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
CFLAGS=${CFLAGS:--std=c99 -Wall -Wextra -Werror -g}
LIBDIR=${LIBDIR:-build/lib}
INCDIR=${INCDIR:-include}
OUTDIR=${OUTDIR:-build/c-tests}
STATIC_LIBS=${STATIC_LIBS:--lssl -lcrypto -lpthread -ldl -lm -lrt -lutil}
VARIANTS=${VARIANTS:-shared static asan}
TIMEOUT=${TIMEOUT:-300}
ONLY=${ONLY:-}

passed=0
failed=0
failures=

mkdir -p "$OUTDIR" || exit 1
if command -v timeout >/dev/null 2>&1; then
	limit="timeout $TIMEOUT"
else
	limit=
fi

# record NAME OK: counts one program.
record() {
	if [ "$2" = ok ]; then
		passed=$((passed + 1))
		echo "PASS $1"
	else
		failed=$((failed + 1))
		failures="$failures $1"
		echo "FAIL $1"
	fi
}

# build VARIANT NAME EXTRA OUT: compiles c-tests/NAME.c for one variant.
build() {
	src="$here/$2.c"
	case $1 in
	shared)
		$CC $CFLAGS -I"$INCDIR" -I"$here" "$src" $3 \
		    -L"$LIBDIR" -ldmsg -o "$4" ;;
	static)
		$CC $CFLAGS -I"$INCDIR" -I"$here" "$src" $3 \
		    "$LIBDIR/libdmsg.a" $STATIC_LIBS -o "$4" ;;
	asan)
		$CC $CFLAGS -fsanitize=address -fno-omit-frame-pointer \
		    -I"$INCDIR" -I"$here" "$src" $3 \
		    -L"$LIBDIR" -ldmsg -o "$4" ;;
	*)
		echo "unknown variant $1" >&2
		return 1 ;;
	esac
}

# The headers also compile as C++ (extern "C", no C-only constructs).
CXX=${CXX:-c++}
if [ -z "$ONLY" ] && command -v "$CXX" >/dev/null 2>&1; then
	if echo '#include <dmsg.h>' | $CXX -x c++ -std=c++11 -Wall -Wextra \
	    -Werror -pedantic -fsyntax-only -I"$INCDIR" -; then
		record "headers (c++)" ok
	else
		record "headers (c++)" no
	fi
fi

while read -r name extra; do
	case $name in
	''|'#'*) continue ;;
	esac
	if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then
		continue
	fi
	for variant in $VARIANTS; do
		label="$name ($variant)"
		out="$OUTDIR/$name.$variant"
		rm -f "$out"
		if ! build "$variant" "$name" "$extra" "$out"; then
			echo "build of $label failed" >&2
			record "$label" no
			continue
		fi
		if LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
		    $limit "$out"; then
			record "$label" ok
		else
			echo "$label exited with status $?" >&2
			record "$label" no
		fi
	done
done < "$here/tests.list"

if [ "$failed" -ne 0 ]; then
	echo "failed:$failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
