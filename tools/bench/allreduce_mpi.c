/* OpenMPI's MPI_Allreduce, for troupe-bench allreduce.
 * usage: mpirun -np N troupe-bench-mpi SIZE,SIZE,...   prints "bytes p50_us" per size (rank 0). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  char* list = argc > 1 ? strdup(argv[1]) : strdup("4096");
  for (char* tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    long bytes = atol(tok);
    long n = bytes / 4;
    float* buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (long i = 0; i < n; ++i) buf[i] = 0.5f;
    double est = 3e8 / (double)bytes;
    int iters = (int)(est < 5 ? 5 : est > 2000 ? 2000 : est);
    double* t = malloc(sizeof(double) * (size_t)iters);
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < (iters / 10 > 2 ? iters / 10 : 2); ++i)
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < iters; ++i) {
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      t[i] = (MPI_Wtime() - t0) * 1e6;
    }
    qsort(t, (size_t)iters, sizeof(double), cmp);
    if (rank == 0) printf("%ld %.2f\n", bytes, t[iters / 2]);
    fflush(stdout);
    free(t);
    free(buf);
  }
  free(list);
  MPI_Finalize();
  return 0;
}
