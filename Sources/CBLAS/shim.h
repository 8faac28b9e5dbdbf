// OpenBLAS CBLAS interface (cblas_sgemm, openblas_set_num_threads, openblas_get_config) and LAPACKE.
#include <cblas.h>
#include <lapacke.h>
