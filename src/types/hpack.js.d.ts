// Types for the parts of hpack.js (HPACK, RFC 7541) that the RPC playground (src/rpc-demo/transports/http2-wire.ts) and the HPACK tests use.
declare module "hpack.js" {
  interface TableOptions {
    table: { maxSize: number };
  }
  interface HeaderField {
    name: string;
    value: string;
    neverIndex?: boolean;
    huffman?: boolean;
  }
  export interface Decompressor {
    write(block: Buffer): boolean;
    execute(): void;
    read(): HeaderField | null;
    updateTableSize(size: number): void;
  }
  export interface Compressor {
    write(headers: HeaderField[]): boolean;
    read(): Buffer | null;
    updateTableSize(size: number): void;
  }
  const hpack: {
    decompressor: { create(options: TableOptions): Decompressor };
    compressor: { create(options: TableOptions): Compressor };
  };
  export default hpack;
}
