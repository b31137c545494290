/* main.c - consistency-test entry point (placeholder until its issue lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "consistency-test: not implemented yet\n");
    return 1;
}
