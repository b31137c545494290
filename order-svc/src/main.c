/* main.c - order-svc entry point (placeholder until its issue lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "order-svc: not implemented yet\n");
    return 1;
}
