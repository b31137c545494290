/* main.c - shard-router entry point (placeholder until its issue lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "shard-router: not implemented yet\n");
    return 1;
}
