# Top-level Makefile of dmsg. It works with GNU make and BSD make (bmake):
# plain targets, ${VAR} and sh only.
#
#   make demo            build the libraries, then run the local demo mesh
#                        (dmsg demo: 5 nodes on loopback TCP, one link cut)
#   make                 release build of libdmsg.so and libdmsg.a, staged
#                        in build/lib (the headers are committed in include/)
#   make check-c         the C tests against the staged libraries
#   make test            cargo test --workspace, then the C tests
#   make headers         regenerate include/ from dmsg-ffi (tools/gen-headers)
#   make check-headers   fail if include/ differs from what would be generated
#   make install         honours PREFIX, DESTDIR, LIBDIR, INCLUDEDIR
#   make uninstall
#   make clean

PREFIX ?= /usr/local
LIBDIR ?= ${PREFIX}/lib
INCLUDEDIR ?= ${PREFIX}/include
PKGCONFIGDIR ?= ${LIBDIR}/pkgconfig
DESTDIR ?=

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
INSTALL ?= install

# Keep in step with the workspace version in Cargo.toml; MAJOR is the
# SONAME number that dmsg-ffi/build.rs sets (libdmsg.so.${MAJOR}).
VERSION = 0.1.0
MAJOR = 0

# System libraries a static link of libdmsg.a needs (also Libs.private).
STATIC_LIBS = -lssl -lcrypto -lpthread -ldl -lm -lrt -lutil

BUILD = build
STAGE = ${BUILD}/lib
C_TEST_CFLAGS = -std=c99 -Wall -Wextra -Werror -g

.PHONY: all libs demo check-c test headers check-headers install uninstall clean

all: libs

libs:
	${CARGO} build --release -p dmsg-ffi
	rm -rf ${STAGE}
	mkdir -p ${STAGE}
	cp ${CARGO_TARGET_DIR}/release/libdmsg_ffi.so ${STAGE}/libdmsg.so.${VERSION}
	ln -s libdmsg.so.${VERSION} ${STAGE}/libdmsg.so.${MAJOR}
	ln -s libdmsg.so.${MAJOR} ${STAGE}/libdmsg.so
	cp ${CARGO_TARGET_DIR}/release/libdmsg_ffi.a ${STAGE}/libdmsg.a

demo: all
	${CARGO} run --release -p dmsg-tools --bin dmsg -- demo

check-c: all
	CC="${CC}" CFLAGS="${C_TEST_CFLAGS}" LIBDIR="${STAGE}" INCDIR=include \
	    OUTDIR="${BUILD}/c-tests" STATIC_LIBS="${STATIC_LIBS}" \
	    sh c-tests/run.sh

test: all
	${CARGO} test --workspace
	CC="${CC}" CFLAGS="${C_TEST_CFLAGS}" LIBDIR="${STAGE}" INCDIR=include \
	    OUTDIR="${BUILD}/c-tests" STATIC_LIBS="${STATIC_LIBS}" \
	    sh c-tests/run.sh

headers:
	${CARGO} run -q -p gen-headers -- include

check-headers:
	@tmp=`mktemp -d` || exit 1; \
	if ${CARGO} run -q -p gen-headers -- "$$tmp" && diff -ru include "$$tmp"; then \
		rc=0; echo "include/ is up to date"; \
	else \
		rc=1; echo "include/ is stale: run 'make headers' and commit" >&2; \
	fi; \
	rm -rf "$$tmp"; exit $$rc

install: all
	mkdir -p ${DESTDIR}${LIBDIR} ${DESTDIR}${INCLUDEDIR}/sys ${DESTDIR}${PKGCONFIGDIR}
	${INSTALL} -m 755 ${STAGE}/libdmsg.so.${VERSION} ${DESTDIR}${LIBDIR}/libdmsg.so.${VERSION}
	ln -sf libdmsg.so.${VERSION} ${DESTDIR}${LIBDIR}/libdmsg.so.${MAJOR}
	ln -sf libdmsg.so.${MAJOR} ${DESTDIR}${LIBDIR}/libdmsg.so
	${INSTALL} -m 644 ${STAGE}/libdmsg.a ${DESTDIR}${LIBDIR}/libdmsg.a
	${INSTALL} -m 644 include/dmsg.h ${DESTDIR}${INCLUDEDIR}/dmsg.h
	${INSTALL} -m 644 include/sys/dmsg.h ${DESTDIR}${INCLUDEDIR}/sys/dmsg.h
	sed -e 's|@PREFIX@|${PREFIX}|g' -e 's|@LIBDIR@|${LIBDIR}|g' \
	    -e 's|@INCLUDEDIR@|${INCLUDEDIR}|g' -e 's|@VERSION@|${VERSION}|g' \
	    -e 's|@STATIC_LIBS@|${STATIC_LIBS}|g' \
	    dmsg.pc.in > ${DESTDIR}${PKGCONFIGDIR}/dmsg.pc

uninstall:
	rm -f ${DESTDIR}${LIBDIR}/libdmsg.so.${VERSION} \
	    ${DESTDIR}${LIBDIR}/libdmsg.so.${MAJOR} ${DESTDIR}${LIBDIR}/libdmsg.so \
	    ${DESTDIR}${LIBDIR}/libdmsg.a ${DESTDIR}${INCLUDEDIR}/dmsg.h \
	    ${DESTDIR}${INCLUDEDIR}/sys/dmsg.h ${DESTDIR}${PKGCONFIGDIR}/dmsg.pc

clean:
	rm -rf ${BUILD}
	${CARGO} clean
