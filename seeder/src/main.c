/* main.c - seeder entry point (placeholder until the grab saga issue lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "seeder: not implemented yet\n");
    return 1;
}
