/*
 * Tiny check helpers shared by the C tests: each failed check prints its
 * place and values, and check_exit() turns the tally into the exit code.
 */
#ifndef DMSG_C_TESTS_CHECK_H
#define DMSG_C_TESTS_CHECK_H

#include <stdio.h>

static int check_run;
static int check_failed;

static inline void
check_true(int ok, const char *what, const char *file, int line)
{
	check_run++;
	if (!ok) {
		check_failed++;
		fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
	}
}

static inline void
check_equal(unsigned long long got, unsigned long long want,
    const char *what, const char *file, int line)
{
	check_run++;
	if (got != want) {
		check_failed++;
		fprintf(stderr, "%s:%d: FAILED: %s is %llu (0x%llx), want %llu (0x%llx)\n",
		    file, line, what, got, got, want, want);
	}
}

/* The condition holds. */
#define CHECK(cond) check_true((cond) != 0, #cond, __FILE__, __LINE__)

/* Two integer values are equal (compared as unsigned long long). */
#define CHECK_EQ(got, want) \
	check_equal((unsigned long long)(got), (unsigned long long)(want), \
	    #got, __FILE__, __LINE__)

/* Prints the tally; returns the process exit code. */
static inline int
check_exit(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_run, check_failed);
	return check_failed == 0 && check_run > 0 ? 0 : 1;
}

#endif
