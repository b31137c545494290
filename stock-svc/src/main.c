/* main.c - stock-svc entry point (placeholder until its issue lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "stock-svc: not implemented yet\n");
    return 1;
}
