/* mkjpeg: writes a JPEG through libjpeg(-turbo) with options PIL cannot ask for (any sampling
   factors, restart intervals, arithmetic coding, colour space, Adobe marker, long scan scripts),
   for the fixtures next to it (make_fixtures.py) and for probing the decoder.
     mkjpeg W H COMPONENTS COLORSPACE h,v [h,v ...] [options] < raw_pixels > out.jpg
   COLORSPACE: rgb | ycc | gray | cmyk | ycck; one h,v sampling pair per component.
   options: -r N restart interval in MCUs, -R N in MCU rows, -a arithmetic coding,
            -p progressive (libjpeg's simple script), -s N N-scan script (DC, then one scan per
            AC coefficient), -q Q quality, -adobe 0|1, -o optimized Huffman tables.
   Build: cc -O2 mkjpeg.c -ljpeg -o mkjpeg */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
int main(int argc, char** argv) {
  int W = atoi(argv[1]), H = atoi(argv[2]), C = atoi(argv[3]);
  const char* cs = argv[4];
  int ai = 5;
  int hs[4] = {1,1,1,1}, vs[4] = {1,1,1,1};
  for (int c = 0; c < C; ++c) { sscanf(argv[ai++], "%d,%d", &hs[c], &vs[c]); }
  int restart = 0, restart_rows = 0, arith = 0, prog = 0, nscans = 0, q = 90, adobe = -1, opt = 0;
  for (; ai < argc; ++ai) {
    if (!strcmp(argv[ai], "-r")) restart = atoi(argv[++ai]);
    else if (!strcmp(argv[ai], "-R")) restart_rows = atoi(argv[++ai]);
    else if (!strcmp(argv[ai], "-a")) arith = 1;
    else if (!strcmp(argv[ai], "-p")) prog = 1;
    else if (!strcmp(argv[ai], "-s")) nscans = atoi(argv[++ai]);
    else if (!strcmp(argv[ai], "-q")) q = atoi(argv[++ai]);
    else if (!strcmp(argv[ai], "-adobe")) adobe = atoi(argv[++ai]);
    else if (!strcmp(argv[ai], "-o")) opt = 1;
  }
  size_t n = (size_t)W * H * C;
  unsigned char* px = malloc(n);
  if (fread(px, 1, n, stdin) != n) { fprintf(stderr, "short input\n"); return 1; }
  struct jpeg_compress_struct ci; struct jpeg_error_mgr je;
  ci.err = jpeg_std_error(&je);
  jpeg_create_compress(&ci);
  jpeg_stdio_dest(&ci, stdout);
  ci.image_width = W; ci.image_height = H; ci.input_components = C;
  ci.in_color_space = C == 1 ? JCS_GRAYSCALE : C == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&ci);
  J_COLOR_SPACE jcs = !strcmp(cs, "rgb") ? JCS_RGB : !strcmp(cs, "ycc") ? JCS_YCbCr : !strcmp(cs, "gray") ? JCS_GRAYSCALE : !strcmp(cs, "cmyk") ? JCS_CMYK : JCS_YCCK;
  jpeg_set_colorspace(&ci, jcs);
  jpeg_set_quality(&ci, q, TRUE);
  for (int c = 0; c < C; ++c) { ci.comp_info[c].h_samp_factor = hs[c]; ci.comp_info[c].v_samp_factor = vs[c]; }
  ci.restart_interval = restart; ci.restart_in_rows = restart_rows;
  ci.arith_code = arith; ci.optimize_coding = opt;
  if (adobe >= 0) ci.write_Adobe_marker = adobe;
  if (prog) jpeg_simple_progression(&ci);
  static jpeg_scan_info scans[100000];
  if (nscans > 0) {
    /* first: all DC, then full AC per comp at Al=0 ... a valid script, then pad with repeated
       AC refinement-free scans isn't valid; instead split AC into single-coefficient spectral
       bands per component: up to 63 * C scans, then successive approx on DC */
    int k = 0;
    scans[k].comps_in_scan = C; for (int c = 0; c < C; ++c) scans[k].component_index[c] = c;
    scans[k].Ss = 0; scans[k].Se = 0; scans[k].Ah = 0; scans[k].Al = 0; ++k;
    for (int c = 0; c < C && k < nscans; ++c)
      for (int s = 1; s <= 63 && k < nscans; ++s) {
        scans[k].comps_in_scan = 1; scans[k].component_index[0] = c;
        scans[k].Ss = s; scans[k].Se = s; scans[k].Ah = 0; scans[k].Al = 0; ++k;
      }
    ci.scan_info = scans; ci.num_scans = k;
  }
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = px + (size_t)ci.next_scanline * W * C;
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  return 0;
}
