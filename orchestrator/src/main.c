/* main.c - orchestrator entry point (placeholder until its issue lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "orchestrator: not implemented yet\n");
    return 1;
}
